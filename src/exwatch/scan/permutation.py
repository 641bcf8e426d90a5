"""A seeded pseudo-random permutation of 0..N-1 that needs O(1) memory (ZMap's method).

The multiplicative group of integers modulo a prime p is cyclic: for a generator g,
x, x*g, x*g^2, ... visits every value 1..p-1 exactly once.  Taking p as the smallest
safe prime (p = 2q + 1, q prime) above N keeps the waste small and makes testing a
generator cheap (g generates iff g^2 != 1 and g^q != 1 mod p).  Values above N are
skipped.  Shard i of n walks the cycle positions i, i+n, i+2n, ..., so shards are disjoint
and together cover everything.  Everything is derived from the seed with SHA-256, so
every machine and every Python version computes the same order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

_SMALL_PRIMES = (3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73)
# Deterministic Miller-Rabin bases for n < 3.3e24; above that the extra bases make a false
# positive vanishingly unlikely (and a composite p only shortens the cycle, caught by tests).
_MR_BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71)


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    for sp in (2, *_SMALL_PRIMES):
        if n % sp == 0:
            return n == sp
    d, r = n - 1, 0
    while d % 2 == 0:
        d //= 2
        r += 1
    for a in _MR_BASES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def next_safe_prime(n: int) -> int:
    """The smallest safe prime p > n (p >= 5)."""
    q = max(2, n // 2)
    while True:
        p = 2 * q + 1
        if p > n and is_prime(q) and is_prime(p):
            return p
        q += 1


def _derive(seed: int, label: str, modulus: int) -> int:
    digest = hashlib.sha256(f"exwatch:{label}:{seed}".encode()).digest()
    return int.from_bytes(digest, "big") % modulus


@dataclass(frozen=True, slots=True)
class Permutation:
    """Order of the indexes 0..size-1 for one seed; `positions` = p - 1 cycle positions."""

    size: int
    prime: int
    generator: int
    start: int  # the cycle element at position 0

    @classmethod
    def create(cls, size: int, seed: int) -> Permutation:
        p = next_safe_prime(size)
        q = (p - 1) // 2
        counter = 0
        while True:
            g = 2 + _derive(seed, f"g{counter}", p - 3) if p > 5 else 2
            if pow(g, 2, p) != 1 and pow(g, q, p) != 1:
                break
            counter += 1
        start = 1 + _derive(seed, "start", p - 1)
        return cls(size, p, g, start)

    @property
    def positions(self) -> int:
        return self.prime - 1

    def element_at(self, position: int) -> int:
        """Cycle value (1..p-1) at a position; index = value - 1 when value <= size."""
        return self.start * pow(self.generator, position, self.prime) % self.prime

    def shard_bounds(self, shard: tuple[int, int], from_position: int = 0) -> tuple[int, int]:
        """First position >= from_position belonging to the shard, and the stride."""
        i, n = shard
        first = from_position + (i - from_position) % n
        return first, n


__all__ = ["Permutation", "is_prime", "next_safe_prime"]
