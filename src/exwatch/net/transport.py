"""Which HTTP(S) client the scanner uses: `--transport` / the `transport` config key.

`python` (default) is `client.HttpClient` (uvloop, Python's ssl); `wreq` is
`transport_wreq.WreqHttpClient` (Rust hyper + BoringSSL), imported only when chosen
because it needs the optional extra `exwatch[fast]`.  Both have HttpClient's interface.
"""

from __future__ import annotations

from exwatch.errors import UsageError
from exwatch.net.client import HttpClient

TRANSPORTS = ("python", "wreq")
DEFAULT_TRANSPORT = "python"


def client_class(name: str) -> type[HttpClient]:
    """The client class for transport `name`; UsageError when unknown or not installed."""
    if name == "python":
        return HttpClient
    if name == "wreq":
        try:
            from exwatch.net.transport_wreq import WreqHttpClient
        except ImportError as exc:
            raise UsageError(
                f"--transport wreq needs the optional dependency: pip install 'exwatch[fast]'"
                f" ({exc})"
            ) from None
        return WreqHttpClient
    raise UsageError(f"unknown transport {name!r} (one of {', '.join(TRANSPORTS)})")


__all__ = ["DEFAULT_TRANSPORT", "TRANSPORTS", "client_class"]
