"""The scanner tests' loopback TLS servers and corpus, for the checks' hostile-server tests."""

from __future__ import annotations

from ..scanner.conftest import canned, cert_pem, server_ctx

__all__ = ["canned", "cert_pem", "server_ctx"]
