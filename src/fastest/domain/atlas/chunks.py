"""Source chunks for embeddings, cut at symbol boundaries and kept under the embedding models' input
limit (512 tokens for Workers AI's `bge` models; tokens counted conservatively as word pieces)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from .facts import Symbol

MAX_TOKENS = 512
_TOKEN = re.compile(r"[A-Za-z]+|\d+|[^\sA-Za-z\d]")


def token_estimate(text: str) -> int:
    """An over-estimate of a subword tokenizer's count: every word, number and symbol, and one more
    per 4 letters of long words."""
    total = 0
    for match in _TOKEN.finditer(text):
        word = match.group()
        total += 1 + (len(word) - 1) // 4 if len(word) > 4 else 1
    return total


@dataclass(frozen=True, slots=True)
class Chunk:
    symbol: str | None  # the symbol's qualified name, None for module-level text
    start_line: int
    end_line: int
    text: str


def _windows(lines: Sequence[str], start: int, end: int, header: str, symbol: str | None) -> list[Chunk]:
    """Lines start..end (1-based, inclusive) as chunks within MAX_TOKENS each."""
    chunks: list[Chunk] = []
    current: list[str] = []
    first = start
    budget = MAX_TOKENS - token_estimate(header) - 2
    used = 0
    for number in range(start, end + 1):
        line = lines[number - 1] if number - 1 < len(lines) else ""
        cost = token_estimate(line) + 1
        if cost > budget:  # one enormous line (minified code): cut it
            line = line[: budget * 2]
            cost = token_estimate(line) + 1
        if current and used + cost > budget:
            chunks.append(Chunk(symbol, first, number - 1, header + "\n".join(current)))
            current, used, first = [], 0, number
        current.append(line)
        used += cost
    if current and any(line.strip() for line in current):
        chunks.append(Chunk(symbol, first, end, header + "\n".join(current)))
    return chunks


def chunk_file(path: str, text: str, symbols: Sequence[Symbol], *, max_chunks: int = 200) -> list[Chunk]:
    """Top-level symbols become chunks (a class too big for one is split at its methods, then by
    lines); the lines outside any symbol form module chunks."""
    lines = text.splitlines()
    top = sorted((s for s in symbols if s.parent is None), key=lambda s: s.start_line)
    chunks: list[Chunk] = []
    covered_until = 0
    gap_start = 1
    for symbol in top:
        if symbol.start_line <= covered_until:
            continue
        if symbol.start_line > gap_start:
            chunks += _windows(lines, gap_start, symbol.start_line - 1, f"{path}\n", None)
        header = f"{path} {symbol.kind} {symbol.name}\n"
        body = "\n".join(lines[symbol.start_line - 1:symbol.end_line])
        if token_estimate(header + body) <= MAX_TOKENS:
            chunks.append(Chunk(symbol.name, symbol.start_line, symbol.end_line, header + body))
        else:
            methods = sorted((s for s in symbols if s.parent == symbol.name), key=lambda s: s.start_line)
            cursor = symbol.start_line
            for method in methods:
                if method.start_line > cursor:
                    chunks += _windows(lines, cursor, method.start_line - 1, header, symbol.name)
                chunks += _windows(lines, method.start_line, method.end_line,
                                   f"{path} method {method.name}\n", method.name)
                cursor = method.end_line + 1
            if cursor <= symbol.end_line:
                chunks += _windows(lines, cursor, symbol.end_line, header, symbol.name)
        covered_until = symbol.end_line
        gap_start = symbol.end_line + 1
    if gap_start <= len(lines):
        chunks += _windows(lines, gap_start, len(lines), f"{path}\n", None)
    return chunks[:max_chunks]
