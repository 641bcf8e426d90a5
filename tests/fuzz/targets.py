"""Fuzz targets for every scanner-side parser of attacker-controlled data.

Each target is a hypothesis property: whatever a hostile server (or a hostile JSON lines
file) sends, the parser returns its result or raises the one error its callers map to a
status; it never raises anything else, never runs unbounded, and keeps its output bounded.
`tests/fuzz/test_fuzz.py` runs each briefly in the suite; `bench/fuzz.py --seconds N` runs
them for longer.  A crash found becomes a regression test beside the parser's own tests.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hypothesis import strategies as st

from exwatch.errors import ProbeError
from exwatch.net.http import Limits, read_response
from exwatch.net.mapper import map_exception
from exwatch.net.tls import certificate_fields
from exwatch.ntlm import NtlmParseError, build_challenge, challenge_from_header
from exwatch.store.ingest import ingest_file

_LIMITS = Limits(max_header_bytes=4096, max_headers=20, max_body_bytes=2048)


# -- HTTP responses ------------------------------------------------------------------------

_HEADER_NAMES = st.sampled_from(
    ["Content-Length", "Transfer-Encoding", "Connection", "X-OWA-Version", "Server", "X"]
)
_HEADER_VALUES = st.one_of(
    st.sampled_from(["chunked", "close", "keep-alive", "0", "-1", "10", "99999999999", ""]),
    st.text(max_size=30).map(lambda t: t.replace("\r", "").replace("\n", "")),
)


@st.composite
def http_responses(draw: st.DrawFn) -> bytes:
    """Raw bytes a server might send: well-formed-ish responses, mutated, or noise."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=600))
    status = draw(
        st.sampled_from([b"200", b"401", b"302", b"204", b"100", b"2x0", b"99", b"-12", b"+20"])
        | st.binary(min_size=3, max_size=3)
    )
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2", b"HTTP/1.1x"]))
    lines = [version + b" " + status + b" " + draw(st.binary(max_size=10))]
    for _ in range(draw(st.integers(0, 25))):
        name = draw(_HEADER_NAMES).encode()
        value = draw(_HEADER_VALUES).encode("utf-8", "replace")
        sep = draw(st.sampled_from([b": ", b":", b" ", b"\t"]))
        lines.append(name + sep + value)
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    body = draw(st.binary(max_size=300))
    if draw(st.booleans()):  # a chunked body, maybe broken
        size = draw(st.integers(0, 400))
        body = f"{size:x}".encode() + b"\r\n" + body + b"\r\n0\r\n\r\n"
    data = head + body
    cut = draw(st.integers(0, len(data)))
    return data[:cut] if draw(st.booleans()) else data


async def _read(data: bytes) -> Any:
    reader = asyncio.StreamReader(limit=_LIMITS.max_header_bytes)
    reader.feed_data(data)
    reader.feed_eof()
    async with asyncio.timeout(5):
        return await read_response(reader, "GET", _LIMITS)


def check_http_response(data: bytes) -> None:
    """A response is read (bounded) or fails with an error `map_exception` makes a status."""
    try:
        response = asyncio.run(_read(data))
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ProbeError) as exc:
        mapped = map_exception(exc, "request")
        assert isinstance(mapped, ProbeError)
        assert mapped.status.value
        return
    assert len(response.body) <= _LIMITS.max_body_bytes
    assert len(response.headers) <= _LIMITS.max_headers
    assert 100 <= response.status <= 999  # three digits, as RFC 9110 15 says


# -- NTLM challenges -----------------------------------------------------------------------


@st.composite
def ntlm_headers(draw: st.DrawFn) -> str:
    """`WWW-Authenticate` values: real challenges with bytes changed, cut or appended."""
    raw = bytearray(
        build_challenge(
            netbios_domain=draw(st.text(max_size=20)),
            dns_computer=draw(st.text(max_size=40)),
        )
    )
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(raw) - 1))
        raw[at] = draw(st.integers(0, 255))
    raw = raw[: draw(st.integers(0, len(raw)))] + draw(st.binary(max_size=40))
    token = base64.b64encode(bytes(raw)).decode()
    if draw(st.integers(0, 9)) == 0:
        token = draw(st.text(max_size=60))
    return draw(st.sampled_from(["NTLM ", "Negotiate ", "", "ntlm  "])) + token


def check_ntlm_header(value: str) -> None:
    try:
        challenge = challenge_from_header(value)
    except NtlmParseError:
        return
    for field_value in challenge.to_json().values():
        assert field_value is None or len(field_value) <= 256


# -- certificates --------------------------------------------------------------------------


def _certificate() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "mail.contoso.test"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Contoso"),
        ]
    )
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1234)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("mail.contoso.test"), x509.DNSName("autodiscover.contoso.test")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.DER)


CERTIFICATE = _certificate()


@st.composite
def certificates(draw: st.DrawFn) -> bytes:
    """DER certificates with bytes changed, cut or appended (or plain noise)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=400))
    raw = bytearray(CERTIFICATE)
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(raw) - 1))
        raw[at] = draw(st.integers(0, 255))
    return bytes(raw[: draw(st.integers(0, len(raw)))]) + draw(st.binary(max_size=20))


def check_certificate(der: bytes) -> None:
    fields = certificate_fields(der)  # never raises
    assert len(fields["sha256"]) == 64
    for key in ("subject", "issuer", "subject_cn"):
        assert fields[key] is None or len(fields[key]) <= 512
    assert len(fields["san"]) <= 100
    json.dumps(fields)  # serialisable as it goes into the record


# -- JSON lines ingest ---------------------------------------------------------------------

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_FIELDS = ["ip", "port", "hostname", "timestamp", "status", "scan_id", "exchange", "cves", "tls"]


@st.composite
def jsonl_lines(draw: st.DrawFn) -> list[str]:
    """Lines of an ingested file: valid records with fields of the wrong type, or junk."""
    lines: list[str] = []
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.integers(0, 5)) == 0:
            lines.append(draw(st.text(max_size=60)).replace("\n", " "))
            continue
        record: dict[str, Any] = {
            "ip": "192.0.2.7",
            "port": 443,
            "timestamp": "2026-01-01T00:00:00Z",
            "status": "success",
            "scan_id": "fuzz",
        }
        for key in draw(st.lists(st.sampled_from(_FIELDS), max_size=4)):
            record[key] = draw(_VALUES)
        lines.append(json.dumps(record, default=str).replace("\n", " "))
    return lines


def check_ingest(store: Any, tmp: Path, lines: list[str]) -> None:
    """Loading hostile lines counts them as good or bad; it never fails the load."""
    path = tmp / "fuzz.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    stats = ingest_file(store, path, scan_id="fuzz").stats
    assert stats.lines <= len(lines)
    assert stats.new_rows + stats.duplicates + stats.bad_lines == stats.lines


TARGETS: dict[str, tuple[Callable[..., Any], Any]] = {
    "http-response": (check_http_response, http_responses()),
    "ntlm-challenge": (check_ntlm_header, ntlm_headers()),
    "certificate": (check_certificate, certificates()),
}

__all__ = [
    "CERTIFICATE",
    "TARGETS",
    "certificates",
    "check_certificate",
    "check_http_response",
    "check_ingest",
    "check_ntlm_header",
    "http_responses",
    "jsonl_lines",
    "ntlm_headers",
]
