"""What a resumed scan already has: (ip, port) pairs in a compact, sorted form.

A resumed census may have millions of targets done.  As a Python set of (str, int) tuples
ten million of them cost about 1.5 GB, copied again page by page into every forked worker
(reference counts write to the pages).  Here an IPv4 pair is one 64-bit integer
(address << 16 | port) in a sorted `array('Q')`: 80 MB for ten million, looked up by binary
search, and never written after it is built.  IPv6 pairs and anything unusual stay in a
small set beside it.  Building sorts chunks and merges them, so the peak stays near the
final size.
"""

from __future__ import annotations

import heapq
import socket
from array import array
from bisect import bisect_left
from collections.abc import Iterable

_CHUNK = 1 << 20


def _key(ip: str, port: int) -> int | None:
    if ":" in ip or not 0 <= port <= 0xFFFF:
        return None
    try:
        packed = socket.inet_aton(ip)
    except OSError:
        return None
    if socket.inet_ntoa(packed) != ip:  # not the canonical spelling the scanner writes
        return None
    return int.from_bytes(packed, "big") << 16 | port


class DoneSet:
    """A read-only set of (ip, port) pairs."""

    def __init__(self, pairs: Iterable[tuple[str, int]] = ()) -> None:
        chunks: list[array[int]] = []
        buffer: list[int] = []
        self._other: set[tuple[str, int]] = set()
        for ip, port in pairs:
            key = _key(ip, port)
            if key is None:
                self._other.add((ip, port))
                continue
            buffer.append(key)
            if len(buffer) >= _CHUNK:
                buffer.sort()
                chunks.append(array("Q", buffer))
                buffer = []
        buffer.sort()
        chunks.append(array("Q", buffer))
        del buffer
        merged = array("Q")
        last = -1
        for key in heapq.merge(*chunks):
            if key != last:  # a pair recorded twice counts once
                merged.append(key)
                last = key
        self._keys = merged

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, tuple) or len(item) != 2:
            return False
        ip, port = item
        if not isinstance(ip, str) or not isinstance(port, int):
            return False
        key = _key(ip, port)
        if key is None:
            return item in self._other
        keys = self._keys
        at = bisect_left(keys, key)
        return at < len(keys) and keys[at] == key

    def __len__(self) -> int:
        return len(self._keys) + len(self._other)

    @property
    def nbytes(self) -> int:
        """Memory held by the packed IPv4 part."""
        return self._keys.buffer_info()[1] * self._keys.itemsize


__all__ = ["DoneSet"]
