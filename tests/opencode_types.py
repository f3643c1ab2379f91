"""Type-check values against `@opencode-ai/sdk`'s own TypeScript types with the TypeScript compiler:
the judge of whether what we send is what an OpenCode client can read (an unknown field, a missing
one or a wrong type is a compile error, so the day OpenCode changes its schema, this says so)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
TSC = REPO / "node_modules" / ".bin" / "tsc"
SDK = REPO / "node_modules" / "@opencode-ai" / "sdk" / "package.json"

needs_sdk = pytest.mark.skipif(not (TSC.exists() and SDK.exists()), reason="needs `npm ci` (typescript and @opencode-ai/sdk)")

_TSCONFIG = {"compilerOptions": {"strict": True, "noEmit": True, "module": "nodenext", "moduleResolution": "nodenext",
                                 "target": "es2022", "skipLibCheck": True, "types": []}, "files": ["check.ts"]}


def typecheck(where: Path, values: dict[str, tuple[str, Any]]) -> None:
    """Each `name: (type, value)` as `const name: type = value` in a module that imports the SDK's
    types; fails with the compiler's messages when one does not type-check."""
    where.mkdir(parents=True, exist_ok=True)
    link = where / "node_modules"
    if not link.exists():
        link.symlink_to(REPO / "node_modules", target_is_directory=True)
    types = sorted({name for type_, _ in values.values() for name in _names(type_)})
    lines = [f"import type {{ {', '.join(types)} }} from \"@opencode-ai/sdk/v2\""]
    lines += [f"export const {name}: {type_} = {json.dumps(value, indent=1)}" for name, (type_, value) in values.items()]
    (where / "check.ts").write_text("\n".join(lines) + "\n")
    (where / "tsconfig.json").write_text(json.dumps(_TSCONFIG))
    done = subprocess.run([str(TSC), "-p", str(where / "tsconfig.json")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def _names(type_: str) -> list[str]:
    """The SDK's type names in a type expression (`Record<string, Part[]>` → Part)."""
    return [name for name in re.findall(r"[A-Z][A-Za-z]+", type_) if name not in ("Record", "Array")]
