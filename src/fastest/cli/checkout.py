"""`fastest checkout SNAPSHOT [DIR]`: materialise a snapshot's files, verified, all or nothing.

Everything is written into a temporary directory next to DIR (same file system, so the final step
is a rename): a failed download or a hash mismatch leaves DIR exactly as it was. A blob used by
several paths is downloaded once.

Blobs come through `POST /v1/blobs/download/batch`, up to 500 (or ~32 MiB by the manifests' sizes)
per request, a few requests at a time; each frame is written as it streams in and verified. A blob
the server leaves out of a batch is asked for alone (so a missing one fails with the server's own
404); a server without the batch route (404/405) gets one `GET` per blob.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

from fastest.cli.client import ApiClient, ApiError
from fastest.cli.failures import CommandFailure
from fastest.cli.frames import group_by_size
from fastest.cli.loader import manifest_loader, prefetch_tree
from fastest.cli.parallel import run_parallel
from fastest.cli.progress import Progress
from fastest.cli.state import ManifestCache
from fastest.cli.writable import file_mode, writable
from fastest.domain.manifest import Entry
from fastest.domain.tree import ManifestLoader, walk

DOWNLOAD_THREADS = 4
DOWNLOAD_BATCH_HASHES = 500
DOWNLOAD_BATCH_BYTES = 32 * 1024 * 1024  # by the manifests' sizes; the server allows 64 MiB


class CheckoutError(CommandFailure):
    """A checkout that cannot proceed; one line for the user (exit code 1)."""


@dataclass(slots=True)
class CheckoutReport:
    snapshot_id: str
    manifest_hash: str
    directory: str
    files: int
    bytes: int
    blobs_downloaded: int

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def is_empty_dir(path: Path) -> bool:
    with os.scandir(path) as entries:
        return next(entries, None) is None


def check_target(target: Path, *, force: bool) -> None:
    if not target.exists():
        return
    if not target.is_dir() or target.is_symlink():
        raise CheckoutError(f"{target} exists and is not a directory")
    if is_empty_dir(target):
        return
    if not force:
        raise CheckoutError(f"{target} is not empty (use --force to replace its contents)")
    here = Path.cwd().resolve()
    if here == target.resolve() or target.resolve() in here.parents:
        raise CheckoutError(f"refusing to replace {target}: it contains the current directory")


def list_files(root_hash: str, load: ManifestLoader) -> list[tuple[str, Entry]]:
    async def collect() -> list[tuple[str, Entry]]:
        return [item async for item in walk(root_hash, load)]

    return asyncio.run(collect())


def checkout(api: ApiClient, snapshot_id: str, target: Path, *, force: bool = False,
             cache: ManifestCache | None = None, known: Mapping[str, bytes] | None = None,
             progress: bool | None = None) -> CheckoutReport:
    """`known`: manifests already at hand (the folder's last pushed tree), spared a download."""
    target = Path(os.path.abspath(target))
    check_target(target, force=force)
    snapshot = api.get_snapshot(snapshot_id)
    known = known or {}
    prefetched = prefetch_tree(api, snapshot["manifest_hash"], cache, known)
    files = writable(list_files(snapshot["manifest_hash"], manifest_loader(api, cache, known, prefetched)),
                     lambda item: item[0])

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.checkout-", dir=target.parent))
    try:
        downloaded = materialise(api, staging, files, progress=progress)
        place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return CheckoutReport(
        snapshot_id=snapshot["id"], manifest_hash=snapshot["manifest_hash"], directory=str(target),
        files=len(files), bytes=sum(entry.size or 0 for _, entry in files), blobs_downloaded=downloaded,
    )


def materialise(api: ApiClient, staging: Path, files: list[tuple[str, Entry]], *, progress: bool | None = None) -> int:
    """Download every blob once into `staging`, copy it to its other paths, set modes. Returns blobs fetched."""
    by_hash: dict[str, list[tuple[str, Entry]]] = {}
    for path, entry in files:
        by_hash.setdefault(entry.hash, []).append((path, entry))
    for path, _ in files:
        (staging / path).parent.mkdir(parents=True, exist_ok=True)
    total_bytes = sum(group[0][1].size or 0 for group in by_hash.values())

    with Progress("downloading", len(by_hash), total_bytes=total_bytes, enabled=progress) as bar:

        def finish(group: list[tuple[str, Entry]], size: int) -> None:
            """The first path holds the verified bytes: check the size, set modes, copy to the others."""
            first_path, first = group[0]
            destination = staging / first_path
            if first.size is not None and size != first.size:
                raise CheckoutError(f"{first_path}: the server sent {size} bytes, the manifest says {first.size}")
            os.chmod(destination, file_mode(first.mode))
            for path, entry in group[1:]:
                shutil.copyfile(destination, staging / path)
                os.chmod(staging / path, file_mode(entry.mode))
            bar.advance(1, size)

        def fetch(group: list[tuple[str, Entry]]) -> None:
            first_path, first = group[0]
            try:
                with open(staging / first_path, "wb") as sink:
                    size = api.download_blob(first.hash, sink)
            except ApiError as exc:
                if exc.status == 404:
                    raise CheckoutError(f"{first_path}: blob {first.hash} is not on the server") from exc
                raise
            finish(group, size)

        def fetch_batch(chunk: list[list[tuple[str, Entry]]]) -> None:
            groups = {group[0][1].hash: group for group in chunk}
            try:
                missing = api.download_batch(
                    list(groups),
                    lambda digest: open(staging / groups[digest][0][0], "wb"),
                    lambda digest, size: finish(groups[digest], size),
                )
            except ApiError as exc:
                if exc.code != "batch_too_large" or len(chunk) == 1:
                    raise
                # The manifests understated the sizes: ask for each half on its own.
                half = len(chunk) // 2
                fetch_batch(chunk[:half])
                fetch_batch(chunk[half:])
                return
            for digest in missing:
                fetch(groups[digest])

        chunks = group_by_size(by_hash.values(), lambda group: group[0][1].size or 0,
                               max_bytes=DOWNLOAD_BATCH_BYTES, max_items=DOWNLOAD_BATCH_HASHES)
        run_parallel(fetch_batch, chunks, threads=DOWNLOAD_THREADS)
    return len(by_hash)


def place(staging: Path, target: Path) -> None:
    """Move the finished tree to `target`; an existing (forced) target is swapped out, then removed."""
    os.chmod(staging, 0o777 & ~_umask())
    if not target.exists():
        os.rename(staging, target)
        return
    if is_empty_dir(target):
        target.rmdir()
        os.rename(staging, target)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    retired.rmdir()
    os.rename(target, retired)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(retired, target)
        raise
    shutil.rmtree(retired, ignore_errors=True)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
