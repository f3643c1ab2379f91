"""A Worker's assets as wrangler prepares them: keys (BLAKE3 of the base64 text and the extension),
checked against wrangler's own BLAKE3 library; the pure-Python BLAKE3 the Worker uses, checked
against the native package; Content-Types; what `.assetsignore` and the configuration files leave out."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import blake3 as native
import pytest
from hypothesis import given, settings, strategies as st

from fastest.domain import blake3 as pure
from fastest.domain import worker_assets
from fastest.domain.worker_assets import AssetError, AssetSelection

REPO = Path(__file__).resolve().parents[2]
BLAKE3_WASM = REPO / "node_modules" / "blake3-wasm"


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 2049, 3072, 4097, 8192, 31 * 1024 + 5, 65537])
def test_pure_blake3_matches_the_native_package_across_chunk_and_block_boundaries(size):
    data = bytes((i * 7 + size) % 251 for i in range(size))
    assert pure.blake3(data) == native.blake3(data).digest()


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=5000))
def test_pure_blake3_matches_the_native_package_on_any_bytes(data):
    assert pure.blake3(data) == native.blake3(data).digest()


SAMPLES = {"index.html": "<h1>héllo</h1>".encode(), "same.html": b"same", "same.txt": b"same",
           "img/logo.png": bytes(range(256)) * 9, "noext": b"x", ".htaccess": b"deny", "a.tar.gz": b"\x1f\x8b",
           "big.js": b"let x = 1;\n" * 500}


@pytest.mark.skipif(not BLAKE3_WASM.exists(), reason="wrangler is not installed: run `npm ci`")
def test_asset_keys_are_what_wrangler_computes():
    """wrangler: blake3-wasm's hash of base64(bytes) + extname without its dot, first 32 hex."""
    script = (f"const {{hash}} = require({json.dumps(str(BLAKE3_WASM))}); const path = require('path');"
              "const files = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
              "const out = {}; for (const [name, b64] of Object.entries(files)) {"
              "  out[name] = hash(b64 + path.extname(name).substring(1)).toString('hex').slice(0, 32); }"
              "console.log(JSON.stringify(out));")
    files = {name: base64.b64encode(data).decode() for name, data in SAMPLES.items()}
    done = subprocess.run(["node", "-e", script], input=json.dumps(files), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    wrangler = json.loads(done.stdout)
    ours = {name: worker_assets.asset_key(data, name) for name, data in SAMPLES.items()}
    assert ours == wrangler
    # The Worker's pure implementation gives the same keys.
    for name, data in SAMPLES.items():
        digest = pure.blake3(base64.b64encode(data) + worker_assets.extension(name).encode()).hex()[:32]
        assert digest == wrangler[name]
    assert ours["same.html"] != ours["same.txt"]


def test_content_types_say_utf8_for_text_and_nothing_for_the_unknown():
    assert worker_assets.content_type("same.html") == "text/html; charset=utf-8"
    assert worker_assets.content_type("docs/README.MD") == "text/markdown; charset=utf-8"
    assert worker_assets.content_type("app.js") == "text/javascript; charset=utf-8"
    assert worker_assets.content_type("logo.svg") == "image/svg+xml"
    assert worker_assets.content_type("site.webmanifest") == "application/manifest+json"
    assert worker_assets.content_type("data.unknownext") is None
    assert worker_assets.content_type(".htaccess") is None and worker_assets.content_type("Makefile") is None


def test_configuration_files_and_assetsignore_patterns_are_not_assets():
    plain = AssetSelection(None)
    assert [p for p in ("_headers", "_redirects", ".assetsignore", "index.html", "sub/_headers") if plain.is_asset(p)] \
        == ["index.html", "sub/_headers"]
    listed = AssetSelection("private/\n*.map\n!keep.map\n# a comment\n\n/top.txt\n")
    kept = [p for p in ("private/a.txt", "x/private/b.txt", "app.js.map", "keep.map", "top.txt", "sub/top.txt", "app.js")
            if listed.is_asset(p)]
    assert kept == ["keep.map", "sub/top.txt", "app.js"]


def test_a_pages_worker_is_refused_unless_an_assetsignore_exists():
    with pytest.raises(AssetError, match=r"_worker\.js.*\.assetsignore"):
        AssetSelection(None).is_asset("_worker.js")
    assert AssetSelection("").is_asset("_worker.js") and not AssetSelection("_worker.js\n").is_asset("_worker.js")


def test_manifest_entries_and_the_assets_configuration():
    assert worker_assets.manifest_entry("a/b.css", "k" * 32, 3) == ("/a/b.css", {"hash": "k" * 32, "size": 3})
    with pytest.raises(AssetError, match="25 MiB|26214400"):
        worker_assets.manifest_entry("huge.bin", "k" * 32, worker_assets.MAX_ASSET_BYTES + 1)
    assert worker_assets.assets_config({}, None, None) == {}
    assert worker_assets.assets_config({"html_handling": "none", "other": 1}, "/*\n  A: b\n", None) == \
        {"html_handling": "none", "_headers": "/*\n  A: b\n"}


def test_without_the_blake3_package_the_pure_implementation_gives_the_same_keys():
    """As on the Worker (Pyodide has no blake3 wheel): the import falls back, the keys do not change."""
    script = ("import sys; sys.modules['blake3'] = None\n"
              "from fastest.domain import worker_assets\n"
              "print(worker_assets._blake3.__module__, worker_assets.asset_key(b'same', 'same.html'))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["fastest.domain.blake3", worker_assets.asset_key(b"same", "same.html")]
