"""Mend the record chain of a damaged EVTX file so the reader loses only damaged records.

The `evtx` package walks each 64 KiB chunk record by record, each record header giving
the size of the record.  A record whose body is damaged costs only that record, but a
damaged header (signature or size) or chunk signature ends the walk, and every later
record of the chunk is lost.  `mend` checks each chunk's chain and, where it breaks,
finds the next intact record (signature, plausible size, matching size copy at its end)
and rewrites the broken header so that it spans exactly the damaged bytes: the reader then
fails on that one span, says so, and goes on.  A chunk whose signature is gone but whose
records are there gets its signature back.  Only the chunks that need it are rewritten,
into a temporary copy; the copy of the triage data is never touched.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import IO

FILE_HEADER_SIZE = 0x1000
CHUNK_SIZE = 0x10000
CHUNK_HEADER_SIZE = 0x200
CHUNK_MAGIC = b"ElfChnk\x00"
RECORD_MAGIC = b"\x2a\x2a\x00\x00"
_MIN_RECORD = 28  # header (24) + size copy (4)


def _intact_at(chunk: bytes | bytearray, at: int) -> int | None:
    """Size of an intact record starting at `at`, else None."""
    if chunk[at : at + 4] != RECORD_MAGIC or at + 8 > len(chunk):
        return None
    size: int = struct.unpack_from("<I", chunk, at + 4)[0]
    if size < _MIN_RECORD or at + size > len(chunk):
        return None
    if struct.unpack_from("<I", chunk, at + size - 4)[0] != size:
        return None
    return size


def _next_intact(chunk: bytes | bytearray, start: int) -> int | None:
    at = chunk.find(RECORD_MAGIC, start)
    while at >= 0:
        if _intact_at(chunk, at) is not None:
            return at
        at = chunk.find(RECORD_MAGIC, at + 1)
    return None


def _chain_intact(chunk: bytes) -> bool:
    """A whole chunk whose signature and record chain are intact (the common case, checked
    without copying the chunk)."""
    if len(chunk) != CHUNK_SIZE or chunk[:8] != CHUNK_MAGIC:
        return False
    free = struct.unpack_from("<I", chunk, 48)[0]
    end = free if CHUNK_HEADER_SIZE < free <= CHUNK_SIZE else CHUNK_SIZE
    at = CHUNK_HEADER_SIZE
    while at + _MIN_RECORD <= end:
        size = _intact_at(chunk, at)
        if size is None:
            # Free space (zeros) after the last record is no damage.
            return not any(chunk[at:end])
        at += size
    return True


def mend_chunk(chunk: bytes) -> tuple[bytes | None, int]:
    """(the mended chunk or None when it needs nothing, number of spans mended)."""
    if len(chunk) < CHUNK_HEADER_SIZE + _MIN_RECORD or _chain_intact(chunk):
        return None, 0
    fixed = bytearray(chunk)
    spans = 0
    if len(fixed) < CHUNK_SIZE:
        # A cut copy: the reader skips a short chunk, though its first records are whole.
        # Pad it, and end its chain at the last record that is complete.
        fixed += bytes(CHUNK_SIZE - len(fixed))
        last = at = CHUNK_HEADER_SIZE
        while (size := _intact_at(fixed, at)) is not None:
            last, at = at, at + size
        if at == CHUNK_HEADER_SIZE:
            return None, 0
        struct.pack_into("<II", fixed, 44, last, at)
        spans += 1
    if fixed[:8] != CHUNK_MAGIC:
        if _next_intact(fixed, CHUNK_HEADER_SIZE) is None:
            return None, 0  # not a chunk (or nothing left in it)
        fixed[:8] = CHUNK_MAGIC
        spans += 1
    at = CHUNK_HEADER_SIZE
    free = struct.unpack_from("<I", fixed, 48)[0]
    end = free if CHUNK_HEADER_SIZE < free <= len(fixed) else len(fixed)
    while at + _MIN_RECORD <= end:
        size = _intact_at(fixed, at)
        if size is not None:
            at += size
            continue
        nxt = _next_intact(fixed, at + 1)
        if nxt is None:
            break  # the rest is free space or damage without a record after it
        span = nxt - at
        if span < _MIN_RECORD:
            break
        # A header that spans the damaged bytes: the reader fails on it and goes on.
        fixed[at : at + 8] = RECORD_MAGIC + struct.pack("<I", span)
        struct.pack_into("<I", fixed, nxt - 4, span)
        spans += 1
        at = nxt
    return (bytes(fixed) if spans else None), spans


def _chunks_to_mend(fh: IO[bytes]) -> Iterator[int]:
    """File offsets of the chunks that need mending."""
    offset = FILE_HEADER_SIZE
    fh.seek(offset)
    while True:
        chunk = fh.read(CHUNK_SIZE)
        if len(chunk) < CHUNK_HEADER_SIZE:
            return
        if mend_chunk(chunk)[0] is not None:
            yield offset
        offset += CHUNK_SIZE


def mend(source: IO[bytes], target: IO[bytes]) -> int:
    """Copy `source` to `target` with every damaged chunk mended; the number of mended
    spans (0: the file needed nothing, and `target` is left empty).  Memory: one chunk."""
    offsets = list(_chunks_to_mend(source))
    if not offsets:
        return 0
    source.seek(0)
    while block := source.read(1 << 20):
        target.write(block)
    spans = 0
    for offset in offsets:
        source.seek(offset)
        fixed, count = mend_chunk(source.read(CHUNK_SIZE))
        if fixed is not None:
            target.seek(offset)
            target.write(fixed)
            spans += count
    target.flush()
    target.seek(0)
    return spans


__all__ = ["mend", "mend_chunk"]
