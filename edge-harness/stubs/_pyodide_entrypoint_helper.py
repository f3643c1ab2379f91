"""Stand-in for the module workerd's Python glue provides (only what the Workers SDK touches).

`cloudflareWorkersModule` is the harness's `cloudflare:workers` (edge-harness/runtime.mjs: `waitUntil`
and `env` of the invocation being served). `patchWaitUntil` has nothing to do: the harness's
contexts already take Python awaitables the way workerd's patched `waitUntil` does.
"""

import js

cloudflareWorkersModule = js.__edge_harness_cloudflare_workers
cloudflareSocketsModule = None


async def doAnImport(name):
    raise ImportError(name)


def patch_env_helper(kwds):
    yield


def patchWaitUntil(ctx):
    pass
