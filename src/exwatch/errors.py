"""The exwatch exception tree.

    ExwatchError
    ├── UsageError        bad input from the user (CLI exit code 2); never raised by a validator
    │   └── BuildParseError   a string that is not a 3- or 4-part Exchange build
    ├── DataError         a shipped or user-supplied data file is malformed (the self-test fails)
    ├── StoreError        the result store cannot be opened or written
    ├── OutputError       an output file cannot be written (disk full, read-only); the scan stops
    └── ProbeError        a network outcome; each subclass carries the status it maps to
        ├── ConnectRefused     -> connection-refused
        ├── ConnectTimeout     -> connection-timeout
        ├── ConnectionReset    -> connection-reset
        ├── TLSFailure         -> tls-error
        ├── ReadTimeout        -> io-timeout
        └── UnexpectedReply    -> protocol-error

Only `net/` translates OS, ssl and asyncio exceptions into ProbeError; nothing above it sees
a raw OSError.  The CLI turns any ExwatchError into a one-line message, never a traceback.
"""

from __future__ import annotations

from exwatch.status import Status


class ExwatchError(Exception):
    """Base of every error exwatch raises on purpose."""


class UsageError(ExwatchError):
    """The user asked for something that cannot be done as asked."""


class BuildParseError(UsageError):
    """A string that is not an Exchange build number."""


class DataError(ExwatchError):
    """A data file (shipped knowledge or user input such as a constituency file) is malformed."""


class StoreError(ExwatchError):
    """The result store cannot be opened, read or written."""


class OutputError(ExwatchError):
    """An output file (the scan's JSON lines) could not be written; nothing partial is left."""


class ProbeError(ExwatchError):
    """A network outcome other than success; `status` is what the result envelope records."""

    status: Status = Status.UNKNOWN_ERROR


class ConnectRefused(ProbeError):
    status = Status.CONNECTION_REFUSED


class ConnectTimeout(ProbeError):
    status = Status.CONNECTION_TIMEOUT


class ConnectionReset(ProbeError):
    status = Status.CONNECTION_RESET


class TLSFailure(ProbeError):
    status = Status.TLS_ERROR


class ReadTimeout(ProbeError):
    status = Status.IO_TIMEOUT


class UnexpectedReply(ProbeError):
    status = Status.PROTOCOL_ERROR


__all__ = [
    "BuildParseError",
    "ConnectRefused",
    "ConnectTimeout",
    "ConnectionReset",
    "DataError",
    "ExwatchError",
    "OutputError",
    "ProbeError",
    "ReadTimeout",
    "StoreError",
    "TLSFailure",
    "UnexpectedReply",
    "UsageError",
]
