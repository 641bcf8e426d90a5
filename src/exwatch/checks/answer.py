"""What one check request got back: a response, or the network outcome instead of one.

Checks record failure as data: an `Answer` with `error` set (the record status value, e.g.
`connection-reset`) where a request got no response.  An aborted request (the connection
closed or reset without an answer) is how an IIS URL Rewrite `AbortRequest` rule looks
from outside, so it is told apart from other failures.
"""

from __future__ import annotations

from dataclasses import dataclass

ABORT_STATUSES = frozenset({"connection-reset", "connection-closed"})


@dataclass(frozen=True, slots=True)
class Answer:
    """A response (status, lower-case header names in order, body as received, possibly
    truncated at the scanner's body cap) or an error (status value and message)."""

    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    error: str | None = None
    error_text: str = ""

    @property
    def answered(self) -> bool:
        return self.error is None and self.status is not None

    @property
    def aborted(self) -> bool:
        """Closed or reset without any response: what AbortRequest looks like."""
        return self.error in ABORT_STATUSES

    @property
    def out_of_time(self) -> bool:
        """The per-host deadline ended the request: later requests would fail too."""
        return self.error == "io-timeout" and "deadline" in self.error_text

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def text(self) -> str:
        """The body as the matchers read it (latin-1 keeps every byte as one character)."""
        return self.body.decode("latin-1")


def failed(error: str, text: str = "") -> Answer:
    return Answer(error=error, error_text=text[:300])


__all__ = ["ABORT_STATUSES", "Answer", "failed"]
