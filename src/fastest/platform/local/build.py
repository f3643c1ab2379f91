"""Server-side builds for the local runtime (off unless its operator sets FASTEST_DEPLOY_BUILDS_ENABLED=1).

The project's files are written to a fresh temporary directory, the build command runs there in a
shell (a subprocess: its own process group, killed at the timeout), its output is kept up to a size
limit, and the output directory's files are read back. The temporary directory is always removed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable, Iterable

from fastest.domain.detection import Detection
from fastest.domain.worker_modules import BUNDLE_DIR
from fastest.platform.worker_bundler import BundleError, bundle

LINE_MAX = 4000


@dataclass(slots=True)
class BuildResult:
    exit_code: int
    log: list[str] = field(default_factory=list)
    outputs: list[tuple[str, bytes, int]] = field(default_factory=list)  # (path, bytes, mode)
    error: str | None = None


class LocalBuilder:
    async def run(self, files: Iterable[tuple[str, bytes, int]], command: str | None, output_dir: str | None, *,
                  timeout: float, max_output_bytes: int,
                  on_lines: Callable[[list[str]], Awaitable[None]] | None = None,
                  worker: Detection | None = None) -> BuildResult:
        """Run `command` (if any) over the files, read back `output_dir` (if any), and with `worker`
        (a JavaScript Worker's detection) add its esbuild bundle under `.worker/`."""
        files = list(files)
        with tempfile.TemporaryDirectory(prefix="fastest-build-") as workdir:
            root = Path(workdir)
            # File work happens in a thread: the server keeps answering while a big tree is copied.
            await asyncio.to_thread(_write_files, root, files)
            result = (await self._execute(root, command, timeout, max_output_bytes, on_lines) if command
                      else BuildResult(exit_code=0))
            if result.exit_code == 0 and output_dir is not None:
                out = (root / output_dir).resolve()
                if not out.is_dir() or not out.is_relative_to(root.resolve()):
                    result.exit_code, result.error = 1, f"the build did not write {output_dir}/"
                else:
                    result.outputs = await asyncio.to_thread(_read_files, out)
            if result.exit_code == 0 and worker is not None and worker.entry:
                await self._bundle(root, worker, result, on_lines)
            return result

    async def _bundle(self, root: Path, worker: Detection, result: BuildResult,
                      on_lines: Callable[[list[str]], Awaitable[None]] | None) -> None:
        out = Path(tempfile.mkdtemp(prefix="fastest-bundle-"))
        try:
            names = await asyncio.to_thread(
                bundle, root, worker.entry or "", out, compatibility_flags=worker.compatibility_flags,
                minify=worker.minify, keep_names=worker.keep_names)
            bundled = [(f"{BUNDLE_DIR}/{name}", (out / name).read_bytes(), 0o644) for name in names]
        except BundleError as exc:
            result.exit_code, result.error = 1, f"bundling {worker.entry} failed: {exc}"
            return
        finally:
            shutil.rmtree(out, ignore_errors=True)
        result.outputs = [o for o in result.outputs if not o[0].startswith(BUNDLE_DIR + "/")] + bundled
        line = f"Bundled {worker.entry} → {names[0]} with esbuild"
        result.log.append(line)
        if on_lines is not None:
            await on_lines([line])

    async def _execute(self, root: Path, command: str, timeout: float, max_output_bytes: int,
                       on_lines: Callable[[list[str]], Awaitable[None]] | None) -> BuildResult:
        process = await asyncio.create_subprocess_shell(
            command, cwd=root, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL, start_new_session=True)
        result = BuildResult(exit_code=-1)
        kept = 0
        truncated = False

        async def read() -> None:
            nonlocal kept, truncated
            assert process.stdout is not None
            pending: list[str] = []
            while True:
                raw = await process.stdout.readline()
                if not raw:
                    break
                if kept + len(raw) > max_output_bytes:
                    if not truncated:
                        truncated = True
                        pending.append(f"… output truncated at {max_output_bytes} bytes")
                    continue
                kept += len(raw)
                pending.append(raw.decode("utf-8", errors="replace").rstrip("\n")[:LINE_MAX])
                if len(pending) >= 50 and on_lines is not None:
                    await on_lines(pending)
                    result.log += pending
                    pending = []
            if pending:
                if on_lines is not None:
                    await on_lines(pending)
                result.log += pending

        try:
            await asyncio.wait_for(asyncio.gather(read(), process.wait()), timeout)
            result.exit_code = process.returncode if process.returncode is not None else -1
        except asyncio.TimeoutError:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await process.wait()
            result.exit_code, result.error = -1, f"the build timed out after {timeout:.0f} s"
        return result


def _write_files(root: Path, files: list[tuple[str, bytes, int]]) -> None:
    for path, data, mode in files:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(0o755 if mode == 0o755 else 0o644)


def _read_files(out: Path) -> list[tuple[str, bytes, int]]:
    outputs = []
    for dirpath, _dirnames, filenames in os.walk(out):
        for name in sorted(filenames):
            full = Path(dirpath) / name
            if full.is_symlink() or not full.is_file():
                continue
            mode = 0o755 if os.access(full, os.X_OK) else 0o644
            outputs.append((full.relative_to(out).as_posix(), full.read_bytes(), mode))
    return outputs
