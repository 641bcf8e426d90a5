"""The lab's TLS looks like real Exchange: RSA 2048 certificates, versions by Windows build.

The rule (`plan.tls_versions`) is checked on its own; then a real 60-host lab under each
backend is checked host by host with plain `ssl` clients against its ground truth.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from exwatch.lab import Lab, hostile
from exwatch.lab.builds import load_builds
from exwatch.lab.ntlm import NtlmIdentity
from exwatch.lab.plan import (
    HOSTILE_TLS,
    TLS12,
    TLS13,
    Backend,
    Host,
    ground_truth,
    make_plan,
    tls_versions,
)

from .running import BACKENDS, running_lab

BASE = "127.16.204.1"  # apart from test_farm.py's ranges, so both modules can run at once
BOTH = (TLS12, TLS13)


def _exchange(line: str, os_version: tuple[int, int, int]) -> Host:
    who = NtlmIdentity("ORG", "EX01", "org.local", "ex01.org.local", "org.local", os_version)
    build = load_builds()[line][0]
    return Host(ip="127.16.0.9", kind="exchange", backends=[Backend(build, who)])


@pytest.mark.parametrize(
    ("line", "os_version", "versions"),
    [
        ("2010", (6, 1, 7601), (TLS12,)),  # 2008 R2
        ("2013", (6, 2, 9200), (TLS12,)),  # 2012
        ("2016", (6, 3, 9600), (TLS12,)),  # 2012 R2
        ("2016", (10, 0, 14393), (TLS12,)),  # 2016
        ("2019", (10, 0, 17763), (TLS12,)),  # 2019
        ("2019", (10, 0, 20348), BOTH),  # 2022: the first Schannel with TLS 1.3
        ("SE", (10, 0, 26100), BOTH),  # 2025
    ],
)
def test_exchange_tls_versions_follow_the_emulated_windows(
    line: str, os_version: tuple[int, int, int], versions: tuple[str, ...]
) -> None:
    assert tls_versions(_exchange(line, os_version)) == versions


@pytest.mark.parametrize(
    ("kind", "server", "versions"),
    [
        ("web", "Microsoft-IIS/8.5", (TLS12,)),
        ("web", "Microsoft-IIS/7.5", (TLS12,)),
        ("web", "Microsoft-IIS/10.0", BOTH),
        ("web", "nginx/1.22.1", BOTH),
        ("web", "Apache", BOTH),
        ("hostile-garbage", "", BOTH),
        ("hostile-broken-tls", "", ()),
        ("hostile-reset", "", ()),
        ("silent", "", ()),
        ("closed", "", ()),
    ],
)
def test_other_hosts_tls_versions(kind: str, server: str, versions: tuple[str, ...]) -> None:
    assert tls_versions(Host(ip="127.16.0.9", kind=kind, server_header=server)) == versions


def test_hostile_tls_behaviours_are_the_ones_the_server_runs_over_tls() -> None:
    assert set(hostile.TLS_BEHAVIOURS) == HOSTILE_TLS


def test_ground_truth_records_the_versions_of_every_host() -> None:
    plan = make_plan(600, seed=4)
    doc = ground_truth(plan)["hosts"]
    seen = set()
    for host in plan.hosts:
        assert doc[host.ip]["tls_versions"] == list(tls_versions(host))
        if host.kind == "exchange":
            seen.add(tuple(doc[host.ip]["tls_versions"]))
    assert seen == {(TLS12,), BOTH}  # a default mix has Exchange hosts of both kinds


# -- a running lab ---------------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from running_lab(request, tmp_path_factory, hosts=60, seed=3, base=BASE)


def _client(
    minimum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
    maximum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3,
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = minimum
    ctx.maximum_version = maximum
    return ctx


def _handshake(ip: str, port: int, ctx: ssl.SSLContext) -> tuple[str | None, bytes | None]:
    """(negotiated version, peer certificate in DER) of one full handshake."""
    with socket.create_connection((ip, port), timeout=5) as raw, ctx.wrap_socket(raw) as tls:
        return tls.version(), tls.getpeercert(binary_form=True)


def _tls_hosts(lab: Lab) -> list[dict[str, Any]]:
    hosts = [gt for gt in lab.ground_truth.values() if gt["tls_versions"]]
    exchange = [gt for gt in hosts if gt["kind"] == "exchange"]
    # The lab must hold both kinds of Exchange host, or the checks below prove little.
    assert {gt["tls_versions"][-1] for gt in exchange} == set(BOTH)
    return hosts


def _where(gt: dict[str, Any]) -> str:
    return f"{gt['ip']} ({gt['kind']}, {gt['profile']}, {gt['tls_versions']})"


def test_client_gets_the_highest_version_the_host_offers(lab: Lab) -> None:
    for gt in _tls_hosts(lab):
        version, _ = _handshake(gt["ip"], lab.port, _client())
        assert version == gt["tls_versions"][-1], _where(gt)


def test_tls13_only_client_fails_on_tls12_only_hosts(lab: Lab) -> None:
    only13 = _client(minimum=ssl.TLSVersion.TLSv1_3)
    refused = 0
    for gt in _tls_hosts(lab):
        if TLS13 in gt["tls_versions"]:
            assert _handshake(gt["ip"], lab.port, only13)[0] == TLS13, _where(gt)
        else:
            with pytest.raises(ssl.SSLError):
                _handshake(gt["ip"], lab.port, only13)
            refused += 1
    assert refused


def test_tls12_only_client_is_served_everywhere(lab: Lab) -> None:
    only12 = _client(maximum=ssl.TLSVersion.TLSv1_2)
    for gt in _tls_hosts(lab):
        assert _handshake(gt["ip"], lab.port, only12)[0] == TLS12, _where(gt)


def test_certificates_are_rsa_2048_signed_sha256(lab: Lab) -> None:
    for gt in _tls_hosts(lab):
        _, der = _handshake(gt["ip"], lab.port, _client())
        assert der is not None
        cert = x509.load_der_x509_certificate(der)
        key = cert.public_key()
        assert isinstance(key, rsa.RSAPublicKey), _where(gt)
        assert key.key_size == 2048
        assert key.public_numbers().e == 65537
        assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
        if gt["tls_cn"]:  # hostile hosts share one certificate of their own
            cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
            assert cn == gt["tls_cn"], _where(gt)


def test_hosts_without_versions_finish_no_handshake(lab: Lab) -> None:
    # Silent hosts are left out: they only time out (test_farm.py checks one).
    for gt in lab.ground_truth.values():
        if gt["tls_versions"] or gt["kind"] == "silent":
            continue
        with pytest.raises((ssl.SSLError, OSError)):
            _handshake(gt["ip"], lab.port, _client())
