"""The closed set of outcomes of one attempt against one target (zgrab2-style kebab case).

Its own module so that `errors` (ProbeError subclasses carry a status) and `model` (which
raises BuildParseError) do not import each other; `exwatch.model` re-exports it.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Outcome of one attempt against one target (closed set, zgrab2-style kebab case)."""

    SUCCESS = "success"
    CONNECTION_REFUSED = "connection-refused"
    CONNECTION_TIMEOUT = "connection-timeout"
    CONNECTION_RESET = "connection-reset"
    CONNECTION_CLOSED = "connection-closed"
    TLS_ERROR = "tls-error"
    IO_TIMEOUT = "io-timeout"
    PROTOCOL_ERROR = "protocol-error"
    BLOCKLISTED = "blocklisted"
    INVALID_TARGET = "invalid-target"
    UNKNOWN_ERROR = "unknown-error"


__all__ = ["Status"]
