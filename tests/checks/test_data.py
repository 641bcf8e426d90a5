"""The shipped check data: every example holds, and the shapes read real attacker text."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from exwatch.checks import behaviour, catalogue, indicators
from exwatch.errors import DataError, UsageError

SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "realsamples"
ECP_LOG = (
    SAMPLES
    / "helsecert-proxylogon/C/Program Files/Microsoft/Exchange Server/V15/Logging/ECP/Server"
    / "ECPServer20210303-1.LOG"
)


def test_selftests_pass() -> None:
    for result in (indicators.selftest(), behaviour.selftest()):
        assert result.ok, result.problems
        assert result.examples >= 10


def test_known_paths_are_unique_plain_and_sourced() -> None:
    data = indicators.load()
    lowered = [p.path.lower() for p in data.paths]
    assert len(lowered) == len(set(lowered))
    assert len(data.paths) >= 60
    for known in data.paths:
        assert re.fullmatch(r"/[A-Za-z0-9_./-]+", known.path)
        assert known.sources
        assert all(s in data.sources for s in known.sources)
    # a path several lists name is asked once, with all of their sources
    supp0rt = next(p for p in data.paths if p.path == "/aspnet_client/supp0rt.aspx")
    assert {"mstic-2021-03", "pwndefend-honeypot", "huntress-proxyshell"} <= set(supp0rt.sources)
    # legitimate Exchange files are never asked for (CSS-Exchange baseline of owa/auth)
    legit = {"logon.aspx", "logoff.aspx", "errorfe.aspx", "redirsuiteserviceproxy.aspx"}
    assert not {p.path.rsplit("/", 1)[1].lower() for p in data.paths} & legit


def test_bad_data_is_refused_with_the_reason() -> None:
    good = indicators.data_text()
    with pytest.raises(DataError, match="not a plain URL path"):
        indicators.parse(good.replace("/aspnet_client/s.aspx", "/aspnet_client/s.aspx?x=1"))
    with pytest.raises(DataError, match="sources"):
        indicators.parse(good.replace("sources: [mstic-2021-03]", "sources: [nobody]", 1))
    with pytest.raises(DataError, match="bad pattern"):
        indicators.parse(good.replace("'\\bOAB\\b'", "'(unclosed'"))
    text = behaviour.data_text()
    with pytest.raises(DataError, match="GET or HEAD"):
        behaviour.parse(text.replace("method: GET", "method: POST", 1))
    with pytest.raises(DataError, match="never sends"):
        behaviour.parse(text.replace("Cookie:", "Authorization:", 1))


def _real_external_url() -> str:
    """The ExternalUrl a real attacker set (HelseCERT's ECP Server log, read in place)."""
    for row in csv.reader(ECP_LOG.read_text("utf-8").splitlines(), quotechar="'"):
        for cell in row:
            m = re.search(r"ExternalUrl='(http://f/<script.*?</script>)'", cell)
            if m:
                return m.group(1).replace('""', '"')
    raise AssertionError("no ExternalUrl with a script in the sample")


@pytest.mark.skipif(not ECP_LOG.is_file(), reason="real samples not present (../shared)")
def test_real_attacker_external_url_reads_as_the_shells() -> None:
    url = _real_external_url()
    assert 'eval(Request["klk123456"],"unsafe")' in url
    dump = (
        "Name                            : OAB (Default Web Site)\r\n"
        "PollInterval                    : 480\r\n"
        "InternalUrl                     : https://mail.example.org/OAB\r\n"
        "InternalAuthenticationMethods   : {WindowsIntegrated}\r\n"
        "ExtendedProtectionTokenChecking : None\r\n"
        "ExternalUrl                     : {}\r\n"
    )
    # Served by ASP.NET the script runs and leaves the settings around it ...
    executed = dump.replace("{}", "http://f/").encode()
    assert [h.shape.id for h in indicators.shapes_in(200, executed)] == ["oab-vdir-dump"]
    # ... served as a plain file the attacker's one-liner itself shows.
    raw = dump.replace("{}", url).encode()
    hits = [h.shape.id for h in indicators.shapes_in(200, raw)]
    assert "chopper-source" in hits
    chopper = next(h for h in indicators.shapes_in(200, raw) if h.shape.id == "chopper-source")
    assert chopper.evidence == 'eval(Request["klk123456"],"unsafe")'


def test_check_ids_groups_and_parse() -> None:
    assert catalogue.check_ids() == (
        "proxylogon",
        "proxyshell",
        "proxynotshell-mitigation",
        "webshells",
    )
    assert catalogue.parse("all-safe") == catalogue.check_ids()
    assert catalogue.parse(["webshells,proxylogon", "proxylogon"]) == ("proxylogon", "webshells")
    assert catalogue.parse("behaviour") == catalogue.check_ids()[:3]
    with pytest.raises(UsageError, match=r"unknown check.*exploit.*groups: all-safe"):
        catalogue.parse("webshells,exploit")


def test_every_check_request_is_payload_free() -> None:
    """No body, no credentials, no third party: GETs, the only extra header is the
    ProxyLogon cookie that routes to localhost, and every domain is one that cannot
    resolve (RFC 2606's .invalid)."""
    for check in behaviour.load().checks:
        for req in (check.request, check.control):
            if req is None:
                continue
            assert req.method == "GET"
            assert {k.lower() for k, _ in req.headers} <= {"cookie"}
            for _, value in req.headers:
                targets = re.findall(r"=([^/;~?]+)/", value)
                assert set(targets) <= {"localhost"}, targets
            for domain in re.findall(r"@([A-Za-z0-9.-]+)", req.path):
                assert domain.endswith(".invalid"), domain
