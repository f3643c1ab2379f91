"""BLAKE3 (its default hash, 32 bytes) in pure Python, for where the `blake3` package cannot be
installed: no wheel of it exists for Pyodide (the Worker), and hashlib has no BLAKE3.

Cloudflare keys a Worker's static assets by a BLAKE3 hash (`worker_assets.asset_key`). The
`blake3` package, where it is installed (the local runtime), computes the same digest natively
and is preferred; this one runs ~1 MB/s on CPython. Written from the BLAKE3 specification: 1 KiB
chunks of 64-byte blocks compressed in 7 rounds, chunk chaining values merged in a binary tree
(a stack, merging completed subtrees as chunks arrive), the root node flagged ROOT.
"""

from __future__ import annotations

import struct

IV = (0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19)
CHUNK_START, CHUNK_END, PARENT, ROOT = 1, 2, 4, 8
BLOCK_LEN, CHUNK_LEN = 64, 1024
M = 0xFFFFFFFF
# The message word order of each of the 7 rounds (the permutation applied 0..6 times).
_PERM = (2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8)


def _schedules() -> tuple[tuple[int, ...], ...]:
    order = tuple(range(16))
    rounds = []
    for _ in range(7):
        rounds.append(order)
        order = tuple(order[i] for i in _PERM)
    return tuple(rounds)


SCHEDULE = _schedules()
_WORDS = struct.Struct("<16I")


def compress(cv, m, counter: int, block_len: int, flags: int):
    """The compression function: 16 output words (the first 8 are the next chaining value)."""
    v0, v1, v2, v3, v4, v5, v6, v7 = cv
    v8, v9, v10, v11 = IV[0], IV[1], IV[2], IV[3]
    v12, v13, v14, v15 = counter & M, (counter >> 32) & M, block_len, flags
    for s in SCHEDULE:
        # columns
        v0 = (v0 + v4 + m[s[0]]) & M; v12 ^= v0; v12 = ((v12 >> 16) | (v12 << 16)) & M
        v8 = (v8 + v12) & M; v4 ^= v8; v4 = ((v4 >> 12) | (v4 << 20)) & M
        v0 = (v0 + v4 + m[s[1]]) & M; v12 ^= v0; v12 = ((v12 >> 8) | (v12 << 24)) & M
        v8 = (v8 + v12) & M; v4 ^= v8; v4 = ((v4 >> 7) | (v4 << 25)) & M
        v1 = (v1 + v5 + m[s[2]]) & M; v13 ^= v1; v13 = ((v13 >> 16) | (v13 << 16)) & M
        v9 = (v9 + v13) & M; v5 ^= v9; v5 = ((v5 >> 12) | (v5 << 20)) & M
        v1 = (v1 + v5 + m[s[3]]) & M; v13 ^= v1; v13 = ((v13 >> 8) | (v13 << 24)) & M
        v9 = (v9 + v13) & M; v5 ^= v9; v5 = ((v5 >> 7) | (v5 << 25)) & M
        v2 = (v2 + v6 + m[s[4]]) & M; v14 ^= v2; v14 = ((v14 >> 16) | (v14 << 16)) & M
        v10 = (v10 + v14) & M; v6 ^= v10; v6 = ((v6 >> 12) | (v6 << 20)) & M
        v2 = (v2 + v6 + m[s[5]]) & M; v14 ^= v2; v14 = ((v14 >> 8) | (v14 << 24)) & M
        v10 = (v10 + v14) & M; v6 ^= v10; v6 = ((v6 >> 7) | (v6 << 25)) & M
        v3 = (v3 + v7 + m[s[6]]) & M; v15 ^= v3; v15 = ((v15 >> 16) | (v15 << 16)) & M
        v11 = (v11 + v15) & M; v7 ^= v11; v7 = ((v7 >> 12) | (v7 << 20)) & M
        v3 = (v3 + v7 + m[s[7]]) & M; v15 ^= v3; v15 = ((v15 >> 8) | (v15 << 24)) & M
        v11 = (v11 + v15) & M; v7 ^= v11; v7 = ((v7 >> 7) | (v7 << 25)) & M
        # diagonals
        v0 = (v0 + v5 + m[s[8]]) & M; v15 ^= v0; v15 = ((v15 >> 16) | (v15 << 16)) & M
        v10 = (v10 + v15) & M; v5 ^= v10; v5 = ((v5 >> 12) | (v5 << 20)) & M
        v0 = (v0 + v5 + m[s[9]]) & M; v15 ^= v0; v15 = ((v15 >> 8) | (v15 << 24)) & M
        v10 = (v10 + v15) & M; v5 ^= v10; v5 = ((v5 >> 7) | (v5 << 25)) & M
        v1 = (v1 + v6 + m[s[10]]) & M; v12 ^= v1; v12 = ((v12 >> 16) | (v12 << 16)) & M
        v11 = (v11 + v12) & M; v6 ^= v11; v6 = ((v6 >> 12) | (v6 << 20)) & M
        v1 = (v1 + v6 + m[s[11]]) & M; v12 ^= v1; v12 = ((v12 >> 8) | (v12 << 24)) & M
        v11 = (v11 + v12) & M; v6 ^= v11; v6 = ((v6 >> 7) | (v6 << 25)) & M
        v2 = (v2 + v7 + m[s[12]]) & M; v13 ^= v2; v13 = ((v13 >> 16) | (v13 << 16)) & M
        v8 = (v8 + v13) & M; v7 ^= v8; v7 = ((v7 >> 12) | (v7 << 20)) & M
        v2 = (v2 + v7 + m[s[13]]) & M; v13 ^= v2; v13 = ((v13 >> 8) | (v13 << 24)) & M
        v8 = (v8 + v13) & M; v7 ^= v8; v7 = ((v7 >> 7) | (v7 << 25)) & M
        v3 = (v3 + v4 + m[s[14]]) & M; v14 ^= v3; v14 = ((v14 >> 16) | (v14 << 16)) & M
        v9 = (v9 + v14) & M; v4 ^= v9; v4 = ((v4 >> 12) | (v4 << 20)) & M
        v3 = (v3 + v4 + m[s[15]]) & M; v14 ^= v3; v14 = ((v14 >> 8) | (v14 << 24)) & M
        v9 = (v9 + v14) & M; v4 ^= v9; v4 = ((v4 >> 7) | (v4 << 25)) & M
    return (v0 ^ v8, v1 ^ v9, v2 ^ v10, v3 ^ v11, v4 ^ v12, v5 ^ v13, v6 ^ v14, v7 ^ v15)


def _chunk_cv(chunk: bytes, counter: int, root: bool) -> tuple[int, ...]:
    """The chaining value of one chunk (≤ 1024 bytes); `root` when it is the whole input."""
    cv = IV
    blocks = max(1, -(-len(chunk) // BLOCK_LEN))
    for i in range(blocks):
        block = chunk[i * BLOCK_LEN:(i + 1) * BLOCK_LEN]
        flags = (CHUNK_START if i == 0 else 0) | (CHUNK_END if i == blocks - 1 else 0)
        if root and i == blocks - 1:
            flags |= ROOT
        cv = compress(cv, _WORDS.unpack(block.ljust(BLOCK_LEN, b"\0")), counter, len(block), flags)
    return cv


def _parent_cv(left, right, root: bool):
    return compress(IV, left + right, 0, BLOCK_LEN, PARENT | (ROOT if root else 0))


def blake3(data: bytes) -> bytes:
    """The 32-byte BLAKE3 hash of `data`."""
    chunks = max(1, -(-len(data) // CHUNK_LEN))
    if chunks == 1:
        return struct.pack("<8I", *_chunk_cv(data, 0, True))
    stack: list[tuple[int, ...]] = []
    for index in range(chunks):
        cv = _chunk_cv(data[index * CHUNK_LEN:(index + 1) * CHUNK_LEN], index, False)
        if index == chunks - 1:
            break
        # Merge completed subtrees: one merge per trailing zero bit of the chunk count so far.
        total = index + 1
        while total & 1 == 0:
            cv = _parent_cv(stack.pop(), cv, False)
            total >>= 1
        stack.append(cv)
    while len(stack) > 1:
        cv = _parent_cv(stack.pop(), cv, False)
    return struct.pack("<8I", *_parent_cv(stack.pop(), cv, True))
