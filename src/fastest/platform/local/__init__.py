"""The local runtime's platform: SQLite D1, file R2, SQLite KV, in-process Durable Objects.

Everything lives under one data directory (mode 0700):

    d1.sqlite      the relational database (migrations applied at start, recorded in d1_migrations)
    r2/            blob bodies and their index
    kv.sqlite      the cache
    sessions/      one SQLite file per session object
    vault.key      the vault key, created on first start (0600) unless FASTEST_VAULT_KEY is set
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping

from fastest.config import Settings
from fastest.platform import LOCAL, Platform
from fastest.platform.ai import embedder_for, model_for_key
from fastest.platform.ai.opencode import RemoteOpenCodeHost
from fastest.platform.local.background import LocalBackground
from fastest.platform.local.blobs import LocalBlobStore
from fastest.platform.local.clock import ManualClock, SystemClock
from fastest.platform.local.database import LocalDatabase
from fastest.platform.local.build import LocalBuilder
from fastest.platform.local.deploy import LocalDeployProvider
from fastest.platform.local.http import HttpxClient
from fastest.platform.local.kv import LocalKeyValue
from fastest.platform.local.migrations import apply_migrations, default_migrations_dir
from fastest.platform.local.opencode import LocalOpenCodeHost, find_binary, npm_prefix
from fastest.platform.local.rate_limit import SlidingWindowRateLimiter
from fastest.platform.local.sessions import LocalSessionNamespace, LocalSessionStorage
from fastest.platform.local.signatures import CryptographySignatureVerifier
from fastest.platform.local.vault import LocalVault, load_or_create_key_file
from fastest.platform.local.embeddings import local_embedder
from fastest.platform.local.vectors import SqliteVectorIndex
from fastest.ports import Clock

__all__ = [
    "LocalBlobStore",
    "LocalDatabase",
    "LocalKeyValue",
    "LocalSessionNamespace",
    "LocalSessionStorage",
    "LocalVault",
    "ManualClock",
    "SlidingWindowRateLimiter",
    "SystemClock",
    "open_local_platform",
]

VAULT_KEY_ENV = "FASTEST_VAULT_KEY"
VAULT_PREVIOUS_KEYS_ENV = "FASTEST_VAULT_PREVIOUS_KEYS"


def open_local_platform(
    data_dir: Path,
    settings: Settings,
    *,
    clock: Clock | None = None,
    migrations_dir: Path | None = None,
    session_factory: Callable[[str, LocalSessionStorage], Any] | None = None,
    env: Mapping[str, str] | None = None,
    fsync_blobs: bool = True,
    session_class: Callable[..., Any] | None = None,
    reactions: tuple[Any, ...] = (),
) -> Platform:
    """Open (creating on first start) the local platform over `data_dir`. Call `platform.close()`
    when done. `env` defaults to the process environment (for the vault key variables).

    Session objects: the namespace hosts `session_class`, built as `session_class(name, storage,
    platform=platform)` (the local counterpart of wrangler.toml's `class_name`; the application's
    choice is made above the platform, in `durable_objects.local.open_platform`). A
    `session_factory(name, storage)` replaces that (tests). With neither, asking for an object
    is an error.

    `fsync_blobs=False` skips the fsync of each blob body before it becomes visible (a few ms per
    put on a real disk): fine for tests and throwaway data, where power loss does not matter.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir.chmod(0o700)  # also when it existed: it holds the database, the blobs and the vault key
    env = os.environ if env is None else env
    clock = clock or SystemClock()
    closers: list[Callable[[], None]] = []
    try:
        vault = _open_vault(data_dir, env)

        db = LocalDatabase(data_dir / "d1.sqlite")
        closers.append(db.close)
        apply_migrations(db, migrations_dir or default_migrations_dir())

        blobs = LocalBlobStore(data_dir / "r2", clock, durable=fsync_blobs)
        closers.append(blobs.close)

        kv = LocalKeyValue(data_dir / "kv.sqlite", clock)
        closers.append(kv.close)

        # Session objects reach the platform they belong to (blobs, D1, the model), which is built
        # below: the factory looks it up when the first object is made, after this function returns.
        built: list[Platform] = []
        sessions = LocalSessionNamespace(
            data_dir / "sessions",
            session_factory or partial(_host, session_class, built),
            now_ms=lambda: int(clock.now().timestamp() * 1000),
        )
        closers.append(sessions.close)
    except BaseException:
        for closer in reversed(closers):
            closer()
        raise

    http = HttpxClient()
    platform = Platform(
        db=db,
        blobs=blobs,
        kv=kv,
        sessions=sessions,
        clock=clock,
        vault=vault,
        rate_limiter=SlidingWindowRateLimiter(clock),
        settings=settings,
        http=http,
        model_factory=partial(model_for_key, settings, http),
        embedder_factory=partial(embedder_for, settings, http, local=local_embedder),
        vectors=SqliteVectorIndex(db),
        signatures=CryptographySignatureVerifier(),
        capabilities=LOCAL,
        closers=closers,
        background=LocalBackground(),
        reactions=reactions,
    )
    if settings.opencode_url:  # an OpenCode server its operator runs, as the Worker uses one
        platform.opencode = RemoteOpenCodeHost(settings.opencode_url, settings.opencode_password)
    else:
        opencode = LocalOpenCodeHost(data_dir / "opencode" / "conversations",
                                     partial(find_binary, npm_prefix(data_dir), settings.opencode_bin), env=env,
                                     idle_seconds=settings.opencode_idle_seconds)
        platform.opencode = opencode
        closers.append(opencode.close)
    platform.deploy_providers["local"] = LocalDeployProvider(data_dir / "deployments", settings.public_url)
    platform.deploy_builder = LocalBuilder()
    built.append(platform)
    return platform


def _host(session_class: Callable[..., Any] | None, built: list[Platform], name: str, storage: LocalSessionStorage) -> Any:
    if session_class is None:
        raise RuntimeError(
            "This local platform hosts no session objects: open it with durable_objects.local.open_platform "
            "(or pass session_class)."
        )
    return session_class(name, storage, platform=built[0])


def _open_vault(data_dir: Path, env: Mapping[str, str]) -> LocalVault:
    """The vault key from the environment if set (shared with other installs), else the data
    directory's own key file, created on first start."""
    current = env.get(VAULT_KEY_ENV, "").strip()
    previous = env.get(VAULT_PREVIOUS_KEYS_ENV, "")
    if not current:
        current = load_or_create_key_file(data_dir / "vault.key")
    return LocalVault.from_base64(current, previous)
