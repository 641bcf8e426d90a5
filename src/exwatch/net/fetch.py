"""One verified HTTPS GET to a named site at a given address (security.txt, RFC 9116).

Unlike the scanner's client, this one verifies the certificate against the site's name
(system trust store, or a CA file the user names): a contact address that decides where
vulnerability details go must come from the site itself, not from whoever answers on the
path.  The caller picks the address (after the exclusion list and the private-range
refusal); everything is bounded in time and size like the scanner's reads, and every
exception leaves as a ProbeError via `mapper.map_exception`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path

from exwatch.net.client import Timeouts
from exwatch.net.http import Limits, Response, head_lines, read_response, request_bytes
from exwatch.net.mapper import Phase, map_exception


def verified_context(cafile: str | Path | None = None) -> ssl.SSLContext:
    """TLS 1.2 or later, certificate and name checked (against `cafile` when given)."""
    ctx = ssl.create_default_context(cafile=None if cafile is None else str(cafile))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


async def get(
    address: str,
    port: int,
    site: str,
    target: str,
    *,
    user_agent: str,
    context: ssl.SSLContext,
    timeouts: Timeouts | None = None,
    limits: Limits | None = None,
) -> Response:
    """GET https://site/target from `address`:`port` (SNI and Host: site)."""
    bounds = timeouts or Timeouts(connect=5.0, tls=5.0, read=10.0, host=20.0)
    caps = limits or Limits(max_header_bytes=32 * 1024, max_headers=100, max_body_bytes=64 * 1024)
    host = site if port == 443 else f"{site}:{port}"
    data = request_bytes("GET", target, head_lines(host, user_agent))
    phase: Phase = "connect"
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(bounds.host):
            async with asyncio.timeout(bounds.connect + bounds.tls):
                reader, writer = await asyncio.open_connection(
                    address,
                    port,
                    ssl=context,
                    server_hostname=site,
                    ssl_handshake_timeout=bounds.tls,
                    limit=caps.max_header_bytes,
                )
            phase = "request"
            async with asyncio.timeout(bounds.read):
                writer.write(data)
                return await read_response(reader, "GET", caps)
    except Exception as exc:
        raise map_exception(exc, phase) from exc
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)


__all__ = ["get", "verified_context"]
