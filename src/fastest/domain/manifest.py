"""Manifests: one canonical JSON document per directory, content-addressed (a Merkle tree).

```json
{"entries": [{"hash": "<64 hex>", "mode": 420, "name": "README.md", "size": 12, "type": "file"},
             {"hash": "<64 hex of the child manifest>", "name": "src", "type": "tree"}], "version": 1}
```

The canonical bytes are `json.dumps(m, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`
in UTF-8, with entries sorted by the UTF-8 bytes of their names, so one tree has one hash whoever
builds it. A manifest's hash is the SHA-256 of those bytes. The server accepts nothing else: a
manifest that parses but is not byte-for-byte canonical is refused, as are bad names, unknown
entry types or fields, and duplicates.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import namedtuple

from fastest.domain.untrusted_text import Unparseable, parse_json

# Neither typing nor dataclasses at run time: the CLI imports this module on every command, and
# those two (with `inspect`, which dataclasses imports) cost it ~15 ms of start-up (bench/cli.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable, Literal

    EntryType = Literal["file", "tree"]

VERSION = 1
MODE_FILE = 0o644  # 420
MODE_EXECUTABLE = 0o755  # 493
MODES = frozenset({MODE_FILE, MODE_EXECUTABLE})
MAX_SIZE = 2**53 - 1
MAX_NAME_BYTES = 255
HEX = frozenset("0123456789abcdef")
# Names no tree may hold: a folder's git repository and the client's own state. A tree is written
# into people's folders (checkout, sync), where `.git/config` or `.git/hooks/` would run commands on
# the next `git status`. Compared as git compares them (case-insensitively, trailing dots and spaces
# dropped, as case-insensitive and Windows file systems would), so `.GIT` or `.git.` are refused too.
RESERVED_NAMES = frozenset({".git", ".fastest"})
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")  # one C-level match, not 64 Python-level tests

class ManifestError(ValueError):
    """Why a manifest was refused. `code` is the API error code, `field` where it went wrong."""

    def __init__(self, message: str, *, code: str = "manifest_invalid", field: str = "manifest") -> None:
        super().__init__(message)
        self.code = code
        self.field = field


class Entry(namedtuple("Entry", ("name", "type", "hash", "size", "mode"), defaults=(None, None))):
    """One name in a directory: `name`, `type` ("file" or "tree"), `hash`, and for files alone
    `size` and `mode`. A named tuple, not a dataclass: a 100,000-file diff or merge builds hundreds
    of thousands of these, and a tuple is built several times faster."""

    __slots__ = ()
    name: str
    type: EntryType
    hash: str
    size: int | None
    mode: int | None

    @property
    def is_tree(self) -> bool:
        return self.type == "tree"

    def to_json(self) -> dict[str, Any]:
        if self.type == "tree":
            return {"name": self.name, "type": "tree", "hash": self.hash}
        return {"name": self.name, "type": "file", "hash": self.hash, "size": self.size, "mode": self.mode}


class Manifest:
    """One directory: its entries (immutable; equal when the entries are).

    A manifest read from bytes keeps them: its entries are parsed only when asked for, and
    `entry_chunks` splits the canonical bytes into one piece per entry, which a diff or merge
    compares as bytes without parsing the entries that are equal (most of a changed directory)."""

    __slots__ = ("_entries", "_data")
    _entries: tuple[Entry, ...] | None
    _data: bytes | None

    def __init__(self, entries: tuple[Entry, ...] | None = None, *, data: bytes | None = None) -> None:
        if entries is None and data is None:
            raise TypeError("a Manifest needs its entries or its canonical bytes")
        object.__setattr__(self, "_entries", entries)
        object.__setattr__(self, "_data", data)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a Manifest is immutable (cannot set {name!r})")

    @property
    def entries(self) -> tuple[Entry, ...]:
        entries = self._entries
        if entries is None:
            entries = _entries_of(self._data)  # type: ignore[arg-type]
            object.__setattr__(self, "_entries", entries)
        return entries

    def __eq__(self, other: object) -> bool:
        return other.__class__ is Manifest and other.entries == self.entries  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self.entries)

    def __repr__(self) -> str:
        return f"Manifest(entries={self.entries!r})"

    def canonical_bytes(self) -> bytes:
        data = self._data
        if data is None:
            data = canonical_bytes(self.entries)
            object.__setattr__(self, "_data", data)
        return data

    @property
    def hash(self) -> str:
        return sha256_hex(self.canonical_bytes())

    def entry_chunks(self) -> list[bytes]:
        """The canonical bytes cut into one piece per entry, in entry order: equal pieces are equal
        entries (same name, type, hash, size and mode), and `entry_of_chunk` parses one."""
        data = self.canonical_bytes()
        if not (data.startswith(_CHUNKS_PREFIX) and data.endswith(_CHUNKS_SUFFIX)):
            # Empty, or bytes trusted by their hash that are not canonical after all.
            data = canonical_bytes(self.entries)
            if len(data) == _EMPTY_LENGTH:
                return []
        chunks = data.split(_CHUNK_SEPARATOR)  # then trimmed at both ends: no copy of the whole
        chunks[0] = chunks[0][len(_CHUNKS_PREFIX):]
        chunks[-1] = chunks[-1][:-len(_CHUNKS_SUFFIX)]
        return chunks

    def child_hashes(self) -> tuple[list[str], list[str]]:
        """(tree hashes, blob hashes) this manifest points at: its edges."""
        trees = [e.hash for e in self.entries if e.type == "tree"]
        blobs = [e.hash for e in self.entries if e.type == "file"]
        return trees, blobs


# Canonical bytes are `{"entries":[{"hash":"…",…},{"hash":"…",…}],"version":1}`: every entry
# object starts with its sorted first key, "hash". Inside a name a quote is escaped (`\"`), so
# `},{"hash":"` occurs only between two entries, and cutting there is exact.
_CHUNKS_PREFIX = b'{"entries":[{"hash":"'
_CHUNKS_SUFFIX = b'}],"version":1}'
_CHUNK_SEPARATOR = b'},{"hash":"'
_EMPTY_LENGTH = len(b'{"entries":[],"version":1}')


def entry_of_chunk(chunk: bytes) -> Entry:
    """The entry one of `Manifest.entry_chunks` encodes."""
    match = _CHUNK.fullmatch(chunk)
    if match is None:  # not the shape canonical bytes have: let JSON say what it is
        raw = json.loads(b'{"hash":"' + chunk + b"}")
        return tuple.__new__(Entry, (raw["name"], raw["type"], raw["hash"], raw.get("size"), raw.get("mode")))
    digest, mode, file_name, size, tree_name = match.groups()
    if mode is None:
        return tuple.__new__(Entry, (_json_string(tree_name), "tree", digest.decode("ascii"), None, None))
    return tuple.__new__(Entry, (_json_string(file_name), "file", digest.decode("ascii"), int(size), int(mode)))


# One entry's chunk: a file's keys are hash, mode, name, size, type; a tree's hash, name, type. A
# name is a JSON string's body: characters other than quote and backslash, or escapes.
_CHUNK = re.compile(
    rb'([0-9a-f]{64})","(?:mode":(\d+),"name":"((?:[^"\\]|\\.)*)","size":(\d+),"type":"file'
    rb'|name":"((?:[^"\\]|\\.)*)","type":"tree)"',
    re.S,
)


def _json_string(raw: bytes) -> str:
    """The text of a JSON string's body as canonical bytes hold it (UTF-8, escapes only where needed)."""
    return json.loads(b'"' + raw + b'"') if b"\\" in raw else raw.decode("utf-8")


def _entries_of(data: bytes) -> tuple[Entry, ...]:
    new = tuple.__new__  # Entry's own constructor, minus a Python-level call per entry
    return tuple([new(Entry, (raw["name"], raw["type"], raw["hash"], raw.get("size"), raw.get("mode")))
                  for raw in json.loads(data)["entries"]])


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_sha256_hex(value: object) -> bool:
    return isinstance(value, str) and _SHA256_HEX.fullmatch(value) is not None


def name_sort_key(name: str) -> bytes:
    return name.encode("utf-8")


def canonical_bytes(entries: Iterable[Entry]) -> bytes:
    """The canonical encoding of a directory's entries (sorted here, so callers need not)."""
    ordered = sorted(entries, key=lambda e: name_sort_key(e.name))
    document = {"version": VERSION, "entries": [e.to_json() for e in ordered]}
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def is_reserved_name(name: str) -> bool:
    return name.rstrip(". ").casefold() in RESERVED_NAMES


def reserved_component(path: str) -> str | None:
    """The first component of a `/`-joined path that no tree may hold (`.git`, `.fastest`), or None."""
    return next((part for part in path.split("/") if is_reserved_name(part)), None)


def validate_name(name: object, where: str, *, allow_reserved: bool = False) -> str:
    if not isinstance(name, str) or not name:
        raise ManifestError("An entry name must be a non-empty string.", field=where)
    if name in (".", ".."):
        raise ManifestError(f"An entry may not be named {name!r}.", field=where)
    if "/" in name or "\x00" in name:
        raise ManifestError("An entry name may not contain '/' or NUL.", field=where)
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates
        raise ManifestError("An entry name must be valid UTF-8.", field=where) from exc
    if len(encoded) > MAX_NAME_BYTES:
        raise ManifestError(f"An entry name may be at most {MAX_NAME_BYTES} bytes.", field=where)
    if not allow_reserved and is_reserved_name(name):
        raise ManifestError(f"No tree may hold {name!r}: it is a repository's or the client's own state.", field=where)
    return name


_FILE_KEYS = frozenset({"name", "type", "hash", "size", "mode"})
_TREE_KEYS = frozenset({"name", "type", "hash"})


def _entry(raw: object, index: int, allow_reserved: bool) -> Entry:
    where = f"entries.{index}"
    if not isinstance(raw, dict):
        raise ManifestError("Each entry must be an object.", field=where)
    name = validate_name(raw.get("name"), f"{where}.name", allow_reserved=allow_reserved)
    kind = raw.get("type")
    if kind not in ("file", "tree"):
        raise ManifestError("An entry's type is 'file' or 'tree'.", field=f"{where}.type")
    expected = _FILE_KEYS if kind == "file" else _TREE_KEYS
    if set(raw) != expected:
        raise ManifestError(f"A {kind} entry has exactly the fields {sorted(expected)}.", field=where)
    if not is_sha256_hex(raw["hash"]):
        raise ManifestError("An entry hash is 64 lowercase hex digits (SHA-256).", field=f"{where}.hash")
    if kind == "tree":
        return Entry(name=name, type="tree", hash=raw["hash"])
    size, mode = raw["size"], raw["mode"]
    if type(size) is not int or not 0 <= size <= MAX_SIZE:
        raise ManifestError("A file size is a non-negative integer.", field=f"{where}.size")
    if type(mode) is not int or mode not in MODES:
        raise ManifestError("A file mode is 420 (0644) or 493 (0755).", field=f"{where}.mode")
    return Entry(name=name, type="file", hash=raw["hash"], size=size, mode=mode)


def parse_manifest(data: bytes, *, allow_reserved: bool = False) -> Manifest:
    """Parse and fully validate a manifest, requiring its canonical bytes.

    `allow_reserved`: accept `.git`/`.fastest` entries, for a client reading trees the server may
    have stored before they were refused; it must then leave those paths out of what it writes."""
    try:
        document = parse_json(data.decode("utf-8"))
    except (UnicodeDecodeError, Unparseable) as exc:
        raise ManifestError("A manifest is a UTF-8 JSON document.", code="manifest_invalid") from exc
    if not isinstance(document, dict) or set(document) != {"version", "entries"}:
        raise ManifestError("A manifest is an object with exactly 'version' and 'entries'.")
    if document["version"] != VERSION or type(document["version"]) is not int:
        raise ManifestError(f"Only manifest version {VERSION} is supported.", field="version")
    raw_entries = document["entries"]
    if not isinstance(raw_entries, list):
        raise ManifestError("'entries' must be a list.", field="entries")
    entries = tuple(_entry(raw, i, allow_reserved) for i, raw in enumerate(raw_entries))
    for index in range(1, len(entries)):
        previous, current = name_sort_key(entries[index - 1].name), name_sort_key(entries[index].name)
        if previous == current:
            raise ManifestError(f"Duplicate entry name {entries[index].name!r}.", field=f"entries.{index}.name")
        if previous > current:
            raise ManifestError(
                "Entries must be sorted by the UTF-8 bytes of their names.",
                code="manifest_not_canonical",
                field=f"entries.{index}.name",
            )
    if canonical_bytes(entries) != data:
        raise ManifestError(
            "The manifest is not in canonical form: json.dumps(m, sort_keys=True, separators=(',', ':'), "
            "ensure_ascii=False) encoded as UTF-8.",
            code="manifest_not_canonical",
        )
    return Manifest(entries, data=data)


def parse_stored_manifest(data: bytes, manifest_hash: str) -> Manifest:
    """Parse a manifest read back from our own storage by its hash.

    Storage holds a manifest only after `parse_manifest` accepted it, under the SHA-256 of its
    bytes. So checking that hash proves these are the very bytes that were validated, and the rest
    of the validation need not run again — a tree diff reads thousands of manifests, and
    re-validating each costs several times the JSON parse. Never use this on bytes from a client."""
    if sha256_hex(data) != manifest_hash:
        raise ManifestError(
            f"The stored manifest {manifest_hash} does not match its hash.", code="manifest_corrupt", field=manifest_hash
        )
    return Manifest(data=data)
