"""Who may read the census: user/password (HTTP Basic) or a bearer token, kept hashed.

Credentials come from a file (`exwatch serve --credentials FILE`) or the environment
variable EXWATCH_WEB_CREDENTIALS, one entry per line:

    analyst:scrypt$16384$8$1$<salt hex>$<hash hex>     a user (HTTP Basic)
    token:scrypt$16384$8$1$<salt hex>$<hash hex>       a bearer token (Authorization: Bearer)

`exwatch serve --hash-secret` reads a secret on stdin and prints its hash, so a password
or token is never written down in clear.  scrypt (memory-hard, in Python's standard
library) makes a stolen file expensive to crack; a successful check is remembered for the
process's lifetime (keyed by a keyed digest of what was presented) so that pages do not
pay scrypt's 50 ms on every request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import threading
from dataclasses import dataclass, field

from exwatch.errors import UsageError

ENV = "EXWATCH_WEB_CREDENTIALS"
TOKEN_NAME = "token"  # noqa: S105 - the user name that marks a bearer token, not a secret
_N, _R, _P = 2**14, 8, 1
_MAXMEM = 64 * 1024 * 1024


def hash_secret(secret: str, *, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(
        secret.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, maxmem=_MAXMEM, dklen=32
    )
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def _verify(secret: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            secret.encode("utf-8"),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_MAXMEM,
            dklen=len(bytes.fromhex(digest)),
        )
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(got, bytes.fromhex(digest))


@dataclass
class Credentials:
    users: dict[str, str] = field(default_factory=dict)  # name -> scrypt hash
    tokens: list[str] = field(default_factory=list)  # scrypt hashes
    _known: set[bytes] = field(default_factory=set)
    _key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __bool__(self) -> bool:
        return bool(self.users or self.tokens)

    @classmethod
    def parse(cls, text: str, where: str) -> Credentials:
        creds = cls()
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, stored = line.partition(":")
            if not sep or not stored.startswith("scrypt$") or stored.count("$") != 5:
                raise UsageError(
                    f"{where} line {number}: expected NAME:scrypt$... (make one with"
                    " `exwatch serve --hash-secret`); secrets are never stored in clear"
                )
            if name == TOKEN_NAME:
                creds.tokens.append(stored)
            else:
                creds.users[name] = stored
        return creds

    @classmethod
    def load(cls, path: str | None) -> Credentials:
        creds = cls()
        if path is not None:
            try:
                with open(path, encoding="utf-8") as handle:
                    text = handle.read()
            except OSError as exc:
                raise UsageError(f"--credentials {path}: {exc.strerror}") from None
            creds = cls.parse(text, path)
        env = os.environ.get(ENV)
        if env:
            more = cls.parse(env, ENV)
            creds.users.update(more.users)
            creds.tokens.extend(more.tokens)
        return creds

    def check(self, authorization: str | None) -> str | None:
        """The user (or "token") an Authorization header proves, or None."""
        if not authorization:
            return None
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        marker = hmac.new(self._key, authorization.encode("utf-8", "replace"), "sha256").digest()
        with self._lock:
            remembered = marker in self._known
        who: str | None = None
        if scheme.lower() == "bearer" and value:
            if remembered or any(_verify(value, h) for h in self.tokens):
                who = TOKEN_NAME
        elif scheme.lower() == "basic" and value:
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return None
            user, sep, password = decoded.partition(":")
            stored = self.users.get(user)
            if sep and stored is not None and (remembered or _verify(password, stored)):
                who = user
        if who is not None and not remembered:
            with self._lock:
                if len(self._known) > 10_000:
                    self._known.clear()
                self._known.add(marker)
        return who


__all__ = ["ENV", "TOKEN_NAME", "Credentials", "hash_secret"]
