"""The plausibility rules: what real Exchange looks like, and why a host is a suspect."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from exwatch import plausibility
from exwatch.errors import DataError
from exwatch.fingerprint import HttpObservation, combine, data_document, sightings
from exwatch.plausibility import (
    RULES,
    iis_plausible,
    load_rules,
    needs_request_checks,
    reasons,
    windows_plausible,
)

PAGE_2016 = '<!-- OwaPage = ASP.auth_logon_aspx --><link href="/owa/auth/15.1.2507/themes/x.css">'


def obs(
    probe: str, status: int = 200, headers: tuple[tuple[str, str], ...] = (), body: str = ""
) -> HttpObservation:
    return HttpObservation(probe, "/x", status, headers, body)


def judge(observations: list[HttpObservation], ntlm_os: str | None = None) -> list[str]:
    found = [s for o in observations for s in sightings(o)]
    fp = combine(found, ntlm=ntlm_os is not None)
    return [r.check for r in reasons(fp, observations, found, ntlm_os)]


def test_selftest_passes_and_is_registered() -> None:
    from exwatch.selftest import CHECKS

    result = plausibility.selftest()
    assert result.problems == []
    assert result.examples >= 15
    assert "exwatch.plausibility:selftest" in CHECKS


@pytest.mark.parametrize(
    ("products", "server", "ok"),
    [
        (["2016"], "Microsoft-IIS/8.5", True),
        (["2016"], "Microsoft-IIS/7.5", False),
        (["2013", "2019"], "Microsoft-IIS/10.0", True),  # a balancer over both
        (["2019"], "Apache/2.4.62 (Debian)", True),  # a proxy says nothing of Windows
        ([], "Microsoft-IIS/5.0", True),  # no product known: nothing to judge
    ],
)
def test_iis_version(products: list[str], server: str, ok: bool) -> None:
    assert iis_plausible(products, server) is ok


def test_windows_version_prefixes() -> None:
    assert windows_plausible(["2010"], "6.1.7601")
    assert windows_plausible(["2016"], "10.0.14393")
    assert not windows_plausible(["2016"], "10.0.20348")
    assert not windows_plausible(["2019"], "10.0.1776")  # a prefix of a longer number


def test_a_real_server_gives_no_reason() -> None:
    observations = [
        obs("http-owa-logon", headers=(("server", "Microsoft-IIS/10.0"),), body=PAGE_2016),
        obs("http-control", 404, (("server", "Microsoft-IIS/10.0"),)),
        obs("http-owa-resource", 200, (("content-type", "image/x-icon"),), "\x00\x00\x01\x00"),
    ]
    assert judge(observations, "10.0.14393") == []


def test_each_check_fires_on_its_own() -> None:
    iis10 = (("server", "Microsoft-IIS/10.0"),)
    page = obs("http-owa-logon", headers=iis10, body=PAGE_2016)
    assert judge([page], "10.0.20348") == ["windows-version"]
    assert judge(
        [obs("http-owa-logon", headers=(("server", "Microsoft-IIS/7.5"),), body=PAGE_2016)]
    ) == ["iis-version"]
    assert judge([page, obs("x", 500, (("server", "gunicorn"),))]) == ["foreign-server"]
    assert judge([page, obs("http-control", 200, iis10, "<html>")]) == ["catch-all"]
    assert judge([page, obs("http-owa-resource", 404, iis10)]) == ["missing-resource"]
    html = (("content-type", "text/html; charset=utf-8"),)
    assert judge([page, obs("http-owa-resource", 200, html, "<html>")]) == ["resource-is-page"]
    online = obs("http-owa-logon", headers=(("x-owa-version", "15.20.7595.016"),), body=PAGE_2016)
    assert judge([online]) == ["online-build"]


def test_reasons_are_short_and_name_the_product() -> None:
    server = "Microsoft-IIS/7.5 (" + "x" * 500 + ")"
    page = obs("http-owa-logon", headers=(("server", server),), body=PAGE_2016)
    found = sightings(page)
    (reason,) = reasons(combine(found), [page], found, None)
    assert "Exchange Server 2016" in reason.message
    assert len(reason.message) < 300


def test_request_checks_only_where_evidence_is_thin() -> None:
    page_only = combine(sightings(obs("http-owa-logon", body=PAGE_2016)))
    assert needs_request_checks(page_only)
    with_fe = combine(
        sightings(obs("http-owa-logon", headers=(("x-feserver", "EXCH01"),), body=PAGE_2016))
    )
    assert not needs_request_checks(with_fe)
    assert not needs_request_checks(combine([]))  # not Exchange at all
    assert "ntlm" in RULES.server_side


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s["iis_versions"]["by_product"].update({"2099": ["10.0"]}), "product line"),
        (lambda s: s["windows_versions"].pop("by_product"), "by_product"),
        (lambda s: s["foreign_servers"].update({"pattern": "("}), "compile"),
        (lambda s: s["checks"].pop("catch-all"), "one message"),
        (lambda s: s.update({"server_side_sources": "ntlm"}), "list"),
    ],
)
def test_bad_rules_are_rejected(change: Any, message: str) -> None:
    doc = copy.deepcopy(data_document())
    change(doc["plausibility"])
    with pytest.raises(DataError, match=message):
        load_rules(doc)
