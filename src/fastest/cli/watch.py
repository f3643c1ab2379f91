"""`fastest watch`: keep a folder pushed as it changes, and tell `push`/`status` what changed.

A one-file push still has to `lstat` every file of the folder to find the one that changed, as git
does: that walk is most of its time on a big folder. A running watcher already knows. Like git's
fsmonitor, it listens to the kernel (inotify, Linux), keeps a journal of changed paths, and answers
`fastest push` and `fastest status` over a local socket: "these paths changed since your token",
so they look at those paths alone (`scan_paths`). It also pushes by itself once the folder has been
quiet for a moment (unless `--no-push`).

Correctness rests on three things:
- Answers are exact up to the moment of the question: before answering, the watcher creates a
  cookie file in `.fastest/` and reads events until the cookie's own event arrives. The kernel
  queues events in order, so every change made before the question has been journaled by then
  (git's fsmonitor does the same).
- A token is `<watcher instance>:<sequence>`. A token of another instance (the watcher restarted),
  or one older than a queue overflow or an ignore-rule change, gets "rescan" instead of paths, and
  the caller walks the whole folder as without a watcher. An answer may say more than changed
  (paths changed back, paths already pushed), never less: the token a push saves is taken before
  its scan, so anything that changes during the push is reported again next time.
- Only the same user's processes may talk to it (`SO_PEERCRED`, both ways); the socket lives in
  Linux's abstract namespace, named after the folder, so nothing is left on disk.

What inotify cannot see, the watcher cannot either: writes through `mmap`, changes made on another
machine of a network file system. `fastest push --rescan` walks the folder regardless.
"""

from __future__ import annotations

import _socket
import hashlib
import json
import os
import struct
import sys
import time
from collections import namedtuple
from pathlib import Path

from fastest.cli.failures import CommandFailure
from fastest.cli.fsutil import write_atomic
from fastest.cli.ignore import IGNORE_FILE, STATE_DIR, IgnoreRules
from fastest.cli.records import Record
from fastest.cli.state import Folder

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up: fastest.cli.records)
if TYPE_CHECKING:
    from typing import Any, Callable

TOKEN_FILE = "watch-token"
COOKIE_PREFIX = "watch-cookie-"
ASK_TIMEOUT_SECONDS = 2.0  # a watcher that does not answer by then is ignored: the caller scans
COOKIE_TIMEOUT_MS = 1000
REQUEST_MAX_BYTES = 4096
_UCRED = struct.Struct("3i")  # pid, uid, gid


def supported() -> bool:
    return sys.platform.startswith("linux")


def socket_address(root: Path) -> bytes:
    """An abstract-namespace name (leading NUL) derived from the folder's real path."""
    digest = hashlib.sha256(os.fsencode(os.path.realpath(root))).hexdigest()[:32]
    return b"\0fastest-watch-" + digest.encode()


def _same_user(sock: Any) -> bool:
    _, uid, _ = _UCRED.unpack(sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, _UCRED.size))
    return uid == os.getuid()


# --------------------------------------------------------------------------------------------------
# the journal (pure: no kernel, no sockets)


class ChangeJournal(Record):
    """Changed paths by the sequence number current when they changed; each answer moves the sequence on."""

    __slots__ = ("instance", "sequence", "reset_at", "changed")
    DEFAULTS = {"instance": lambda: os.urandom(8).hex(), "sequence": 0, "reset_at": 0, "changed": dict}
    instance: str
    sequence: int
    reset_at: int  # tokens older than this must rescan
    changed: dict[str, int]

    def record(self, path: str) -> None:
        self.changed[path] = self.sequence

    def reset(self) -> None:
        """Something was missed (queue overflow) or the rules changed: every earlier token must rescan."""
        self.changed.clear()
        self.reset_at = self.sequence

    def answer(self, since: str | None) -> tuple[str, list[str] | None]:
        """(a new token, the paths changed since `since`, or None: rescan)."""
        paths: list[str] | None = None
        instance, _, number = (since or "").partition(":")
        if instance == self.instance and number.isdigit() and int(number) >= self.reset_at:
            after = int(number)
            paths = sorted(path for path, when in self.changed.items() if when > after)
        token = f"{self.instance}:{self.sequence}"
        self.sequence += 1
        return token, paths


# --------------------------------------------------------------------------------------------------
# the client side: what push and status call


class WatchAnswer(namedtuple("WatchAnswer", ("token", "paths"))):
    __slots__ = ()
    token: str
    paths: list[str] | None  # None: rescan the folder


def saved_token(folder: Folder) -> str | None:
    """The token the last push saved (`remember`), if any."""
    try:
        return (folder.state_dir / TOKEN_FILE).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def ask(folder: Folder) -> WatchAnswer | None:
    """What changed since the token of the last push, if a watcher runs for this folder; else None."""
    if not supported():
        return None
    since = saved_token(folder)
    # `_socket`'s socket type: importing the `socket` module costs push and status more than the question.
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(ASK_TIMEOUT_SECONDS)
        sock.connect(socket_address(folder.root))
        if not _same_user(sock):
            return None
        sock.sendall(json.dumps({"since": since}).encode() + b"\n")
        answer = json.loads(_read_line(sock))
        paths = answer.get("paths")
        if not isinstance(answer.get("token"), str) or not (paths is None or all(isinstance(p, str) for p in paths)):
            return None
        return WatchAnswer(answer["token"], paths)
    except (OSError, ValueError, AttributeError):
        return None  # no watcher, or one that is stuck: scan as usual
    finally:
        sock.close()


def remember(folder: Folder, token: str) -> None:
    """Called once a push has saved the tree it pushed: the next push asks what changed since `token`."""
    write_atomic(folder.state_dir / TOKEN_FILE, token.encode() + b"\n", 0o600)


def _read_line(sock: Any) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


# --------------------------------------------------------------------------------------------------
# the watcher


class WatchError(CommandFailure):
    """The folder cannot be watched (one line for the user)."""


class Watcher:
    """inotify watches on every directory the push walks (ignored ones are left alone), feeding a journal."""

    def __init__(self, folder: Folder) -> None:
        from inotify_simple import INotify, flags  # Linux only; imported when a watcher starts

        self.folder = folder
        self.root = str(folder.root)
        self.flags = flags
        self.journal = ChangeJournal()
        self.rules = IgnoreRules.for_folder(folder.root)
        self.directories: dict[int, str] = {}  # watch descriptor -> `/`-joined directory ("" is the root)
        self._cookies: set[str] = set()
        self._cookie_number = 0
        self.last_event = 0.0  # monotonic time of the last journaled change
        import socket

        # The name first: a second watcher of the folder stops before placing a single watch.
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.server.bind(socket_address(folder.root))
        except OSError as exc:
            self.server.close()
            raise WatchError(f"{self.root} is already being watched") from exc
        self.inotify = INotify()
        try:
            folder.state_dir.mkdir(exist_ok=True)
            self._state_watch = self.inotify.add_watch(str(folder.state_dir), flags.CREATE | flags.ONLYDIR)
            self._watch_tree("")
        except BaseException:
            self.close()
            raise
        self.server.listen(16)  # questions wait in the backlog until `run` serves them

    def close(self) -> None:
        self.server.close()
        self.inotify.close()

    # watches

    @property
    def _mask(self) -> int:
        f = self.flags
        return (f.CREATE | f.DELETE | f.MODIFY | f.ATTRIB | f.MOVED_FROM | f.MOVED_TO
                | f.ONLYDIR | f.DONT_FOLLOW | f.EXCL_UNLINK)

    def _watch_tree(self, top: str) -> None:
        """Watch `top` and the directories under it that a push would enter. Each watch is placed
        before its directory is listed, so nothing created meanwhile goes unseen."""
        pending = [top]
        while pending:
            relative = pending.pop()
            absolute = os.path.join(self.root, relative) if relative else self.root
            try:
                wd = self.inotify.add_watch(absolute, self._mask)
            except FileNotFoundError:
                continue  # gone already: its parent's event says so
            except OSError as exc:
                if exc.errno == 28:  # ENOSPC: out of inotify watches
                    raise WatchError("too many directories to watch: raise fs.inotify.max_user_watches "
                                     "(sysctl) or ignore some in .fastestignore") from exc
                continue
            self.directories[wd] = relative
            try:
                entries = list(os.scandir(absolute))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                path = f"{relative}/{entry.name}" if relative else entry.name
                if entry.is_dir(follow_symlinks=False) and not self.rules.is_ignored(path, is_dir=True):
                    pending.append(path)

    def _unwatch_tree(self, top: str) -> None:
        for wd, relative in list(self.directories.items()):
            if relative == top or relative.startswith(top + "/"):
                del self.directories[wd]
                try:
                    self.inotify.rm_watch(wd)
                except OSError:
                    pass  # already gone with its directory

    def _rewatch(self) -> None:
        for wd in list(self.directories):
            try:
                self.inotify.rm_watch(wd)
            except OSError:
                pass
        self.directories.clear()
        self.rules = IgnoreRules.for_folder(self.folder.root)
        self._watch_tree("")

    # events

    def drain(self, timeout_ms: int = 0) -> int:
        """Read and journal whatever events are queued (waiting up to `timeout_ms` for the first)."""
        events = self.inotify.read(timeout=timeout_ms)
        for event in events:
            self._handle(event)
        return len(events)

    def _handle(self, event: Any) -> None:
        f = self.flags
        if event.mask & f.Q_OVERFLOW:
            self.journal.reset()
            self._rewatch()
            self.last_event = time.monotonic()
            return
        if event.wd == self._state_watch:
            if event.name.startswith(COOKIE_PREFIX):
                self._cookies.add(event.name)
            return
        directory = self.directories.get(event.wd)
        if directory is None:
            return
        if event.mask & f.IGNORED:  # the directory is gone (its parent reported it)
            del self.directories[event.wd]
            return
        if not event.name:
            return
        path = f"{directory}/{event.name}" if directory else event.name
        is_dir = bool(event.mask & f.ISDIR)
        if path == IGNORE_FILE:
            self.journal.reset()  # other rules: other files count
            self._rewatch()
        elif self.rules.is_ignored(path, is_dir=is_dir) or path == STATE_DIR:
            return
        elif is_dir and event.mask & (f.CREATE | f.MOVED_TO):
            self._watch_tree(path)
        elif is_dir and event.mask & f.MOVED_FROM:
            self._unwatch_tree(path)
        self.journal.record(path)
        self.last_event = time.monotonic()

    def settle(self) -> None:
        """Journal every change made before now: touch a cookie and read events until it shows up."""
        self._cookie_number += 1
        name = f"{COOKIE_PREFIX}{os.getpid()}-{self._cookie_number}"
        cookie = self.folder.state_dir / name
        cookie.touch()
        try:
            deadline = time.monotonic() + COOKIE_TIMEOUT_MS / 1000
            while name not in self._cookies and time.monotonic() < deadline:
                self.drain(timeout_ms=COOKIE_TIMEOUT_MS)
            if name not in self._cookies:
                self.journal.reset()  # could not confirm: make everyone rescan rather than miss a change
        finally:
            self._cookies.discard(name)
            cookie.unlink(missing_ok=True)

    def answer(self, since: str | None) -> WatchAnswer:
        self.settle()
        token, paths = self.journal.answer(since)
        return WatchAnswer(token, paths)

    # the socket

    def serve_one(self) -> None:
        connection, _ = self.server.accept()
        with connection:
            connection.settimeout(ASK_TIMEOUT_SECONDS)
            try:
                if not _same_user(connection):
                    return
                request = json.loads(_read_line(connection)[:REQUEST_MAX_BYTES])
                since = request.get("since") if isinstance(request, dict) else None
                answer = self.answer(since if isinstance(since, str) else None)
                connection.sendall(json.dumps({"token": answer.token, "paths": answer.paths}).encode() + b"\n")
            except (OSError, ValueError):
                return  # a client that went away or sent garbage


def run(folder: Folder, *, on_quiet: Callable[[Watcher], bool] | None, quiet_seconds: float,
        on_ready: Callable[[Watcher], object] | None = None, should_stop: Callable[[], bool] = lambda: False) -> None:
    """Watch until interrupted: answer questions on the socket, and call `on_quiet` at the start
    (for what changed while nobody watched) and once changes have stopped for `quiet_seconds` (the
    auto-push). `on_quiet` returns False to be called again one quiet delay later (the folder was busy)."""
    watcher = Watcher(folder)
    import selectors  # the watcher's own loop; a command that asks it needs none of this

    selector = selectors.DefaultSelector()
    try:
        selector.register(watcher.inotify.fileno(), selectors.EVENT_READ, "events")
        selector.register(watcher.server, selectors.EVENT_READ, "question")
        if on_ready is not None:
            on_ready(watcher)
        handled_change = -1.0  # before the start: on_quiet runs once straight away
        while not should_stop():
            pending = on_quiet is not None and watcher.last_event > handled_change
            wait = max(0.0, watcher.last_event + quiet_seconds - time.monotonic()) if pending else 0.5
            for key, _ in selector.select(timeout=wait):
                if key.data == "events":
                    watcher.drain()
                else:
                    watcher.serve_one()
            if (on_quiet is not None and watcher.last_event > handled_change
                    and time.monotonic() >= watcher.last_event + quiet_seconds):
                handled_change = watcher.last_event
                if on_quiet(watcher) is False:
                    watcher.last_event = time.monotonic()  # again after another quiet delay
    finally:
        selector.close()
        watcher.close()

