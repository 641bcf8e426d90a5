"""The fuzz targets, briefly (longer runs: `python bench/fuzz.py --seconds N`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from exwatch.store import Store, open_store
from exwatch.store.ingest import ingest_file
from tests.fuzz.targets import (
    CERTIFICATE,
    certificates,
    check_certificate,
    check_http_response,
    check_ingest,
    check_ntlm_header,
    http_responses,
    jsonl_lines,
    ntlm_headers,
)

BRIEF = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


@BRIEF
@given(http_responses())
def test_fuzz_http_response(data: bytes) -> None:
    check_http_response(data)


@BRIEF
@given(ntlm_headers())
def test_fuzz_ntlm_challenge(value: str) -> None:
    check_ntlm_header(value)


@BRIEF
@given(certificates())
def test_fuzz_certificate_fields(der: bytes) -> None:
    check_certificate(der)


def test_the_certificate_seed_parses() -> None:
    from exwatch.net.tls import certificate_fields

    check_certificate(CERTIFICATE)
    fields = certificate_fields(CERTIFICATE)
    assert fields["subject_cn"] == "mail.contoso.test"
    assert "parse_error" not in fields


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return open_store(tmp_path_factory.mktemp("fuzz") / "f.duckdb")


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)
@given(lines=jsonl_lines())
def test_fuzz_jsonl_ingest(store: Store, tmp_path: Path, lines: list[str]) -> None:
    check_ingest(store, tmp_path, lines)


@pytest.mark.parametrize(
    "line",
    [
        # Found by the fuzzer after the store's validation was rewritten: unhashable values
        # where a status or a verdict belongs raised TypeError instead of rejecting the line.
        '{"ip": "192.0.2.7", "port": 443, "timestamp": "2026-01-01T00:00:00Z",'
        ' "status": [], "scan_id": "fuzz"}',
        '{"ip": "192.0.2.8", "port": 443, "timestamp": "2026-01-01T00:00:00Z",'
        ' "status": "success", "scan_id": "fuzz", "cves": {"CVE-2021-26855": {}}}',
    ],
)
def test_unhashable_status_or_verdict_is_a_rejected_line(
    store: Store, tmp_path: Path, line: str
) -> None:
    path = tmp_path / "one.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    stats = ingest_file(store, path, scan_id="fuzz").stats
    assert (stats.lines, stats.bad_lines, stats.new_rows) == (1, 1, 0)
