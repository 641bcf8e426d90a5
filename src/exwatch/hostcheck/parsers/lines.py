"""Streaming line reader shared by the text parsers.

Files are read line by line in binary with a bounded line length, so a file of gigabytes
or a zero-filled tail (Exchange preallocates, collectors truncate) never sits in memory.
Each line is decoded as UTF-8; a line that is not UTF-8 falls back to cp1252 (the ANSI code
page of most Exchange servers) and is counted.  Files with a UTF-16 BOM are decoded as such.
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Iterator
from pathlib import Path

from exwatch.hostcheck.records import FileStats

# A longer line is cut and counted as bad: no Exchange or IIS log writes lines this long.
MAX_LINE_BYTES = 1 << 20


def read_lines(path: Path, stats: FileStats) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text without line ending); never raises on content."""
    with path.open("rb") as fh:
        head = fh.read(4)
        fh.seek(0)
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            yield from _read_utf16(fh, stats)
            return
        if head.startswith(codecs.BOM_UTF8):
            fh.seek(3)
        number = 0
        while True:
            chunk = fh.readline(MAX_LINE_BYTES)
            if not chunk:
                return
            number += 1
            if not chunk.endswith(b"\n") and len(chunk) >= MAX_LINE_BYTES:
                stats.bad(number)
                stats.warn(f"line {number}: longer than {MAX_LINE_BYTES} bytes, skipped")
                while chunk and not chunk.endswith(b"\n"):
                    chunk = fh.readline(MAX_LINE_BYTES)
                continue
            try:
                text = chunk.decode("utf-8")
            except UnicodeDecodeError:
                text = chunk.decode("cp1252", errors="replace")
                stats.decode_fallbacks += 1
            yield number, text.rstrip("\r\n")


def _read_utf16(fh: io.BufferedReader, stats: FileStats) -> Iterator[tuple[int, str]]:
    reader = io.TextIOWrapper(fh, encoding="utf-16", errors="replace", newline=None)
    try:
        yield from _utf16_lines(reader, stats)
    finally:
        reader.detach()  # the caller's `with` closes the file, not the wrapper


def _utf16_lines(reader: io.TextIOWrapper, stats: FileStats) -> Iterator[tuple[int, str]]:
    number = 0
    while True:
        text = reader.readline(MAX_LINE_BYTES)
        if not text:
            return
        number += 1
        if not text.endswith("\n") and len(text) >= MAX_LINE_BYTES:
            stats.bad(number)
            stats.warn(f"line {number}: longer than {MAX_LINE_BYTES} characters, skipped")
            while text and not text.endswith("\n"):
                text = reader.readline(MAX_LINE_BYTES)
            continue
        yield number, text.rstrip("\r\n")


__all__ = ["MAX_LINE_BYTES", "read_lines"]
