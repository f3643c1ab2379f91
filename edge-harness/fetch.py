"""Fill `.edge/` with the Worker's Python dependencies for Pyodide, from the package index.

Run by the README's test command (`.venv/bin/python edge-harness/fetch.py`); the harness itself never
downloads anything. Idempotent: what is already there is kept (pip skips downloaded files).

- `.edge/wheels/`: wheels built for Pyodide 314 (`pyemscripten_2026_0_wasm32`) or pure Python
  (requirements.txt), unpacked into Pyodide's site-packages when the harness starts;
- `.edge/pure/`: markupsafe and PyYAML without their compiled modules (pure-requirements.txt), from
  their Linux wheels; both fall back to their pure-Python code when the compiled module is absent.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent / ".edge"
PYODIDE_PLATFORM = "pyemscripten_2026_0_wasm32"
PYTHON = "3.14"


def download(requirements: Path, target: Path, platforms: list[str], abis: list[str]) -> None:
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
               "--python-version", PYTHON, "--implementation", "cp", "-d", str(target), "-r", str(requirements)]
    for platform in platforms:
        command += ["--platform", platform]
    for abi in abis:
        command += ["--abi", abi]
    subprocess.run(command, check=True)


def main() -> int:
    wheels, native, pure = ROOT / "wheels", ROOT / "native", ROOT / "pure"
    download(HERE / "requirements.txt", wheels, [PYODIDE_PLATFORM, "any"], ["cp314", "abi3", "none"])
    download(HERE / "pure-requirements.txt", native, ["manylinux_2_17_x86_64", "manylinux2014_x86_64"], ["cp314"])
    pure.mkdir(parents=True, exist_ok=True)
    for wheel in sorted(native.glob("*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if name.endswith(".so") or ".dist-info/" in name:
                    continue
                archive.extract(name, pure)
    print(f"edge harness: {len(list(wheels.glob('*.whl')))} wheels in {wheels.relative_to(HERE.parent)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
