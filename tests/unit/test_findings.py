"""The action-item analyses on fixture trees, the patch format, and the parse checks."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from fastest.domain import findings, patches
from fastest.domain.findings import FileInfo
from fastest.domain.parse_checks import check_parses

LEAKY_CONFIG = """\
import os

DEBUG = False
DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite:///app.db")
AWS_ACCESS_KEY_ID = "AKIAZ7VRSQ5TKHJ3XQPL"
STRIPE_KEY = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"
"""


def analyze(files: dict[str, str | int]) -> list[findings.Finding]:
    infos = [FileInfo(p, len(v.encode()) if isinstance(v, str) else v) for p, v in files.items()]
    texts = {p: v for p, v in files.items() if isinstance(v, str) and findings.wants_text(FileInfo(p, len(v)))}
    return findings.analyze(infos, texts)


def test_a_leaked_key_in_a_config_file_is_a_critical_item_without_the_secret():
    found = analyze({"config/settings.py": LEAKY_CONFIG, "tests/test_settings.py": "def test(): pass\n"})
    secrets = [f for f in found if f.kind == "secrets"]
    assert len(secrets) == 1 and found[0] is secrets[0]  # critical comes first
    item = secrets[0]
    assert item.severity == "critical" and item.subject == "config/settings.py" and item.magnitude == 2
    assert set(item.data["rules"]) == {"AWS Access Key", "Stripe Access Key"}
    assert "AKIAZ7VRSQ5TKHJ3XQPL" not in repr(item) and "sk_live" not in repr(item)
    assert item.fingerprint("wsp_1") == "secrets:wsp_1:config/settings.py"


def test_no_secret_no_item_and_lockfiles_are_not_scanned():
    found = analyze({"app.py": "KEY = os.environ['KEY']\n", "package-lock.json": '{"x": "AKIAZ7VRSQ5TKHJ3XQPL"}'})
    assert not [f for f in found if f.kind == "secrets"]


def test_package_json_without_a_lockfile():
    found = analyze({"package.json": '{"dependencies": {"left-pad": "^1"}}', "index.test.js": "", "index.js": ""})
    assert [(f.kind, f.subject, f.severity) for f in found] == [("missing-lockfile", "package.json", "medium")]
    assert not analyze({"package.json": "{}", "package-lock.json": "{}"})
    # a monorepo package is pinned by the root's lockfile
    assert not [f for f in analyze({"pnpm-lock.yaml": "", "packages/a/package.json": "{}"}) if f.kind == "missing-lockfile"]


def test_pyproject_without_dependencies_needs_no_lockfile():
    assert not analyze({"pyproject.toml": '[project]\nname = "x"\n'})
    found = analyze({"pyproject.toml": '[project]\nname = "x"\ndependencies = ["httpx"]\n'})
    assert [f.kind for f in found] == ["missing-lockfile"]
    assert not analyze({"pyproject.toml": '[project]\ndependencies = ["httpx"]\n', "uv.lock": ""})


def test_modules_without_tests_are_grouped_by_directory():
    found = analyze({
        "src/app/models.py": "", "src/app/views.py": "", "src/app/__init__.py": "",
        "tests/test_models.py": "", "web/button.tsx": "", "web/button.test.tsx": "", "web/util.ts": "",
    })
    untested = {f.subject: f for f in found if f.kind == "untested-modules"}
    assert set(untested) == {"src/app", "web"}
    assert untested["src/app"].data["modules"] == ["src/app/views.py"] and untested["src/app"].magnitude == 1
    assert untested["web"].data["modules"] == ["web/util.ts"] and untested["web"].severity == "low"


def test_oversized_binaries():
    found = analyze({"assets/video.mp4": 12 * 1024 * 1024, "data/big.csv": 50 * 1024 * 1024, "logo.png": 1000})
    assert [(f.kind, f.subject, f.magnitude) for f in found] == [("oversized-binary", "assets/video.mp4", 12)]


def test_vendored_directories_are_skipped():
    assert not analyze({"node_modules/x/index.js": LEAKY_CONFIG, "node_modules/x/package.json": "{}"})


def test_parse_checks():
    assert check_parses("a.py", b"x = 1\n") is None
    assert "PY" in check_parses("a.py", b"def f(:\n")
    assert check_parses("a.json", b'{"a": 1}') is None and check_parses("a.json", b"{") is not None
    assert check_parses("a.toml", b"a = 1") is None and check_parses("a.toml", b"a = ") is not None
    assert check_parses("a.yaml", b"a: [1") is not None and check_parses("a.yml", b"a: 1\n") is None
    assert check_parses("README.md", b"# {") is None  # no checker: nothing to say


@pytest.mark.skipif(shutil.which("git") is None or shutil.which("patch") is None, reason="needs git and patch")
def test_patches_apply_with_git_and_patch(tmp_path):
    old = {"config.py": b"A = 1\nB = 2\nC = 3\n", "gone.txt": b"bye\n", "tail.txt": b"no newline"}
    new = {"config.py": b"A = 1\nB = 20\nC = 3\n", "added/new.py": b"print('x')\n", "tail.txt": b"still none\nx"}
    patch = patches.unified_patch([(p, old.get(p), new.get(p)) for p in sorted(set(old) | set(new))])
    for tool in ("git", "patch"):
        root = tmp_path / tool
        for path, data in old.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(data)
        (root / "change.patch").write_text(patch)
        if tool == "git":
            subprocess.run(["git", "init", "-q"], cwd=root, check=True)
            subprocess.run(["git", "apply", "--check", "change.patch"], cwd=root, check=True)
            subprocess.run(["git", "apply", "change.patch"], cwd=root, check=True)
        else:
            subprocess.run(["patch", "-p1", "-s", "-i", "change.patch"], cwd=root, check=True)
        for path, data in new.items():
            assert (root / path).read_bytes() == data, (tool, path)
        assert not (root / "gone.txt").exists()
