"""The pure parts: how a host's answers become a compromise state, a reading, a verdict."""

from __future__ import annotations

import pytest

from exwatch.checks import behaviour, compromise, indicators, verdicts
from exwatch.checks.answer import Answer, failed
from exwatch.checks.behaviour import Reading, State

DATA = indicators.load()
NOT_FOUND = Answer(
    404, (("server", "Microsoft-IIS/10.0"),), b"<h2>404 - File or directory not found.</h2>"
)
OAB = (
    b"Name                            : OAB (Default Web Site)\r\n"
    b"PollInterval                    : 480\r\n"
    b"MetabasePath                    : IIS://EX01.corp.local/W3SVC/1/ROOT/OAB\r\n"
    b"AdminDisplayVersion             : Version 15.1 (Build 2176.2)\r\n"
    b"Server                          : EX01\r\n"
    b"InternalAuthenticationMethods   : {WindowsIntegrated}\r\n"
    b"ExternalUrl                     : http://f/\r\n"
)
LOGON = b"<html><head><title>Outlook</title></head><body>" + b"x" * 4000 + b"</body></html>"


def _baselines(answer: Answer) -> list[compromise.Baseline]:
    return [compromise.Baseline(f, f + "qwertyuiopas.aspx", answer) for f in DATA.folders]


def _answers(default: Answer, **special: Answer) -> dict[str, Answer]:
    out = {p.path: default for p in DATA.paths}
    out.update({k.replace("__", "/"): v for k, v in special.items()})
    return out


def judge(baseline: Answer, answers: dict[str, Answer]) -> compromise.Judgement:
    return compromise.judge(DATA, _baselines(baseline), answers)


def test_clean_when_every_known_path_is_absent() -> None:
    j = judge(NOT_FOUND, _answers(NOT_FOUND))
    assert j.state is compromise.Compromise.CLEAN
    assert j.asked == j.answered == len(DATA.paths)
    assert j.to_json()["state"] == "clean-at-known-paths"


def test_a_shell_shape_at_a_known_path_is_compromised_with_evidence() -> None:
    answers = _answers(NOT_FOUND)
    answers["/aspnet_client/supp0rt.aspx"] = Answer(200, (), OAB)
    j = judge(NOT_FOUND, answers)
    assert j.state is compromise.Compromise.COMPROMISED
    (finding,) = j.findings
    assert finding["path"] == "/aspnet_client/supp0rt.aspx"
    assert finding["shape"] == "oab-vdir-dump"
    assert finding["evidence"].startswith("ExternalUrl")
    assert "http://f/" in finding["evidence"]
    assert finding["extract"] == {
        "admin_display_version": "Version 15.1 (Build 2176.2)",
        "server": "EX01",
    }
    assert "supp0rt.aspx" in j.reason


def test_status_alone_never_makes_a_shell() -> None:
    # a 200 at a known path with an ordinary page: something is there, but not a shell
    answers = _answers(NOT_FOUND)
    answers["/aspnet_client/shell.aspx"] = Answer(200, (), b"<html><body>hello</body></html>")
    j = judge(NOT_FOUND, answers)
    assert j.state is compromise.Compromise.UNKNOWN
    assert j.unexplained == [{"path": "/aspnet_client/shell.aspx", "status": 200, "bytes": 31}]
    assert not j.findings


def test_a_server_that_answers_200_everywhere_is_unknown_never_compromised() -> None:
    page = Answer(200, (), LOGON)
    j = judge(page, _answers(page))
    assert j.state is compromise.Compromise.UNKNOWN
    assert "answers a page for names it lacks" in j.reason
    assert not j.findings
    assert not j.unexplained


def test_a_shell_behind_a_catch_all_is_still_found() -> None:
    page = Answer(200, (), LOGON)
    answers = _answers(page)
    answers["/owa/auth/errorEE.aspx"] = Answer(200, (), OAB)
    j = judge(page, answers)
    assert j.state is compromise.Compromise.COMPROMISED
    assert [f["path"] for f in j.findings] == ["/owa/auth/errorEE.aspx"]


def test_a_shape_the_baseline_shows_proves_nothing() -> None:
    error = Answer(
        500, (), b"<title>Runtime Error</title><H1>Server Error in '/' Application.</H1>"
    )
    j = judge(error, _answers(error))
    assert j.state is compromise.Compromise.UNKNOWN
    assert "already answers like a shell" in j.reason
    assert not j.findings
    # where the baseline is an ordinary 404, the same error page at a known path counts
    answers = _answers(NOT_FOUND)
    answers["/aspnet_client/xx.aspx"] = error
    j = judge(NOT_FOUND, answers)
    assert [(f["path"], f["shape"], f["confidence"]) for f in j.findings] == [
        ("/aspnet_client/xx.aspx", "aspx-runtime-error", "medium")
    ]


def test_the_baseline_page_again_is_never_a_finding() -> None:
    # a server whose every answer (random names included) is the same OAB-like page
    page = Answer(200, (), OAB)
    j = judge(page, _answers(page))
    assert j.state is compromise.Compromise.UNKNOWN
    assert not j.findings


def test_failed_or_missing_requests_make_it_unknown() -> None:
    answers = _answers(NOT_FOUND)
    answers["/owa/auth/a.aspx"] = failed("connection-reset", "reset")
    j = judge(NOT_FOUND, answers)
    assert j.state is compromise.Compromise.UNKNOWN
    assert j.failures == [{"path": "/owa/auth/a.aspx", "error": "connection-reset"}]
    partial = dict(list(_answers(NOT_FOUND).items())[:10])  # the host ran out of time
    j = judge(NOT_FOUND, partial)
    assert j.state is compromise.Compromise.UNKNOWN
    assert f"{len(DATA.paths) - 10} not asked" in j.reason


def test_pst_export_is_read_from_its_magic_bytes() -> None:
    answers = _answers(NOT_FOUND)
    answers["/aspnet_client/HWTJQDMFVMPOON.aspx"] = Answer(200, (), b"!BDN\x00\x01" + bytes(200))
    j = judge(NOT_FOUND, answers)
    assert [(f["shape"], f["campaign"]) for f in j.findings] == [("pst-export", "proxyshell")]


# -- behavioural readings ------------------------------------------------------------

CHECKS = behaviour.load()
PROXYLOGON = CHECKS.by_id("proxylogon")
PNS = CHECKS.by_id("proxynotshell-mitigation")


@pytest.mark.parametrize(
    ("answer", "control", "state"),
    [
        (Answer(500, (("x-calculatedbetarget", "localhost"),)), None, State.VULNERABLE),
        (Answer(404, (("x-feserver", "EX01"),)), None, State.NOT_VULNERABLE),
        (Answer(404, (("server", "nginx"),)), None, State.INCONCLUSIVE),
        (failed("connection-reset"), Answer(404), State.MITIGATED),
        (failed("connection-closed"), Answer(404), State.MITIGATED),
        (failed("connection-reset"), failed("connection-refused"), State.INCONCLUSIVE),
        (failed("io-timeout", "timed out"), None, State.FAILED),
        (failed("tls-error", "handshake"), None, State.FAILED),
    ],
)
def test_proxylogon_readings(answer: Answer, control: Answer | None, state: State) -> None:
    reading = behaviour.read(PROXYLOGON, answer, control)
    assert reading.state is state
    if state is State.MITIGATED:
        assert reading.cves == ("CVE-2021-26855",)
        assert reading.evidence.startswith("eomt: the request was aborted")


def test_proxynotshell_check_reads_mitigation_only() -> None:
    answered = behaviour.read(PNS, Answer(401, (("www-authenticate", "Negotiate"),)))
    assert answered.state is State.NOT_MITIGATED
    aborted = behaviour.read(PNS, failed("connection-reset"), Answer(401))
    assert aborted.state is State.MITIGATED
    assert aborted.cves == ("CVE-2022-41040", "CVE-2022-41082")
    # a mitigation-only check has no vulnerable reading, whatever the answer says
    body = Answer(200, (("x-feserver", "EX"),), b"Exchange MAPI/HTTP Connectivity Endpoint")
    assert behaviour.read(PNS, body).state is State.NOT_MITIGATED


def test_reading_round_trips_through_json() -> None:
    r = behaviour.read(PROXYLOGON, Answer(500, (("x-calculatedbetarget", "localhost"),)))
    assert Reading.from_json("proxylogon", r.to_json()) == r


# -- the verdict merge ---------------------------------------------------------------

V, P, U, NA, M = "vulnerable", "patched", "undetermined", "not-affected", "mitigated"
CVE = "CVE-2021-26855"


def _r(state: State, cves: tuple[str, ...] = (CVE,)) -> Reading:
    return Reading("proxylogon", state, "500", "x-calculatedbetarget: localhost", cves)


@pytest.mark.parametrize(
    ("build", "state", "verdict", "conflict"),
    [
        (U, State.VULNERABLE, V, False),
        (U, State.NOT_VULNERABLE, P, False),
        (U, State.MITIGATED, M, False),
        (V, State.VULNERABLE, V, False),
        (V, State.NOT_VULNERABLE, V, True),
        (V, State.MITIGATED, M, False),
        (P, State.VULNERABLE, V, True),
        (P, State.NOT_VULNERABLE, P, False),
        (P, State.MITIGATED, P, False),
        (NA, State.VULNERABLE, V, True),
        (NA, State.NOT_VULNERABLE, NA, False),
        (NA, State.MITIGATED, NA, False),
        (U, State.INCONCLUSIVE, U, False),
        (V, State.FAILED, V, False),
        (U, State.NOT_MITIGATED, U, False),
    ],
)
def test_merge_table(build: str, state: State, verdict: str, conflict: bool) -> None:
    other = {"CVE-2021-34473": V}
    merged = verdicts.merge({CVE: build, **other}, [_r(state)])
    assert merged.cves == {CVE: verdict, **other}
    assert bool(merged.conflicts) is conflict
    if conflict:
        (c,) = merged.conflicts
        assert (c["cve"], c["build"], c["reading"], c["verdict"]) == (CVE, build, state.value, V)
    assert (CVE in merged.settled) is (verdict != build)


def test_merge_never_settles_what_the_catalogue_does_not_judge() -> None:
    basis = {CVE: "not assessed (out of support)", "CVE-2021-34473": "fixed in 15.1.2176.12"}
    skip = verdicts.unjudged(basis)
    assert skip == frozenset({CVE})
    merged = verdicts.merge({CVE: U}, [_r(State.NOT_VULNERABLE)], skip)
    assert merged.cves == {CVE: U}
    # a vulnerable reading still says what the server did
    assert verdicts.merge({CVE: U}, [_r(State.VULNERABLE)], skip).cves == {CVE: V}


def test_merge_basis_names_the_behaviour() -> None:
    merged = verdicts.merge({CVE: U}, [_r(State.VULNERABLE)])
    assert merged.basis == {CVE: "behaviour: proxylogon saw x-calculatedbetarget: localhost"}


def test_a_host_without_a_build_gets_verdicts_only_from_what_it_did() -> None:
    merged = verdicts.merge({}, [_r(State.VULNERABLE)], no_build=True)
    assert merged.cves == {CVE: V}
    assert merged.settled[CVE]["build"] is None
    assert verdicts.merge({}, [_r(State.MITIGATED)], no_build=True).cves == {CVE: M}
    # not vulnerable: patched or not affected, nobody can say which
    assert verdicts.merge({}, [_r(State.NOT_VULNERABLE)], no_build=True).cves == {}
    # with a build, a CVE the catalogue does not judge stays out
    assert verdicts.merge({"CVE-2021-34473": V}, [_r(State.VULNERABLE)]).cves == {
        "CVE-2021-34473": V
    }
