"""Stand-in for the module workerd provides to Python Workers: the compatibility flags in force, as
attributes. None of the flags the SDK asks about is set by wrangler.toml (`python_workers` only)."""

python_workflows_implicit_dependencies = False
python_request_headers_preserve_commas = False


def __getattr__(name):
    return False
