# ruff: noqa: E501  (log lines and fixture rows are kept whole on purpose)
"""Rule data self-test, the rule language, and Test-ProxyLogon parity case by case."""

from __future__ import annotations

import pytest
from hostcheck_logfmt import ecp, hp  # type: ignore[import-not-found]

from exwatch.errors import DataError
from exwatch.hostcheck.parsers import PARSERS
from exwatch.hostcheck.records import Kind, Record
from exwatch.hostcheck.rules import build_rules, like_to_regex, load_rules, selftest

RULES = {r.id: r for r in load_rules()}


def test_selftest_passes_and_covers_every_rule() -> None:
    result = selftest()
    assert result.problems == []
    assert result.examples >= 2 * len(RULES)
    for rule in RULES.values():
        assert rule.examples["match"]
        assert "no_match" in rule.examples


def test_registered_in_global_selftest() -> None:
    from exwatch.selftest import CHECKS

    assert "exwatch.hostcheck.rules:selftest" in CHECKS
    assert "exwatch.hostcheck.files:selftest" in CHECKS


def test_like_is_powershell_wildcard() -> None:
    assert like_to_regex("ServerInfo~*/*").fullmatch("serverinfo~a]@h:444/x")
    assert not like_to_regex("ServerInfo~*/*").fullmatch("xServerInfo~a/b")
    assert like_to_regex("a?c").fullmatch("ABC")
    assert not like_to_regex("a?c").fullmatch("abbc")


def test_bad_rule_data_is_a_data_error() -> None:
    with pytest.raises(DataError):
        build_rules([{"id": "x"}], {})
    base = {
        "id": "x",
        "cve": None,
        "technique": "t",
        "severity": "high",
        "description": "d",
        "sources": [],
        "applies_to": ["iis:w3c:line"],
        "examples": {"match": ["a"], "no_match": []},
    }
    with pytest.raises(DataError):
        build_rules([base | {"condition": {"field": "a", "bogus": 1}}], {})
    with pytest.raises(DataError):
        build_rules([base | {"condition": {"field": "a", "regex": "("}}], {})


def _hp(**kw: str) -> Record:
    (rec,), _ = PARSERS[Kind.HTTPPROXY].parse_text(hp(**kw))
    return rec


# Test-ProxyLogon CVE-2021-26855: AnchorMailbox -like 'ServerInfo~*/*' and not
# 'ServerInfo~*/autodiscover*' and not 'ServerInfo~localhost*/*' (case-insensitive).
@pytest.mark.parametrize(
    ("anchor", "hit"),
    [
        ("ServerInfo~a]@exch01:444/ecp/proxyLogon.ecp?#", True),
        ("SERVERINFO~a]@exch01:444/mapi/emsmdb/?#", True),
        ("ServerInfo~a]@exch01:444/AutoDiscover/autodiscover.xml?#", False),
        ("ServerInfo~LocalHost:444/ecp/x#", False),
        ("ServerInfo~localhostx/ecp/x#", False),  # -like localhost* also drops this
        ("ServerInfo~exch01", False),  # no slash
        ("xServerInfo~a/b", False),  # whole-string match
        ("ServerInfo~a]@b/", True),
        ("Sid~S-1-5-21-1", False),
        ("", False),
    ],
)
def test_parity_26855(anchor: str, hit: bool) -> None:
    assert RULES["tpl-cve-2021-26855-ssrf"].matches(_hp(AnchorMailbox=anchor)) is hit


# CVE-2021-27065 (a): only the Ecp folder, AnchorMailbox like ServerInfo~*/*Reset*VirtualDirectory#, status 200.
@pytest.mark.parametrize(
    ("folder", "anchor", "status", "hit"),
    [
        (
            "Ecp",
            "ServerInfo~a]@h:444/ecp/DDI/DDIService.svc/SetObject?schema=ResetOABVirtualDirectory#",
            "200",
            True,
        ),
        (
            "ecp",
            "serverinfo~a]@h:444/ecp/ddi/ddiservice.svc/setobject?schema=resetoabvirtualdirectory#",
            "200",
            True,
        ),
        (
            "Ecp",
            "ServerInfo~a]@h:444/ecp/DDI/DDIService.svc/SetObject?schema=ResetOABVirtualDirectory#",
            "500",
            False,
        ),
        (
            "Owa",
            "ServerInfo~a]@h:444/ecp/DDI/DDIService.svc/SetObject?schema=ResetOABVirtualDirectory#",
            "200",
            False,
        ),
        (
            "Ecp",
            "ServerInfo~a]@h:444/ecp/DDI/DDIService.svc/SetObject?schema=ResetOABVirtualDirectory",
            "200",
            False,
        ),  # no '#'
        (
            "Ecp",
            "ServerInfo~a]@h:444/ecp/DDI/DDIService.svc/SetObject?schema=OABVirtualDirectory#",
            "200",
            False,
        ),
    ],
)
def test_parity_27065_reset(folder: str, anchor: str, status: str, hit: bool) -> None:
    rec = _hp(Protocol="Ecp", AnchorMailbox=anchor, HttpStatus=status)
    rec.extra = {"_folder": folder.lower()}  # what discovery passes from the folder name
    assert RULES["tpl-cve-2021-27065-reset-vdir"].matches(rec) is hit


@pytest.mark.parametrize(
    ("event_data", "hit"),
    [
        (
            'S:CMD=Set-OabVirtualDirectory.ExternalUrl=\'http://f/<script language="JScript" runat="server">function Page_Load(){eval(Request["k"],"unsafe");}</script>\'.Identity=\'g\';S:URL=/ecp/DDI/DDIService.svc/SetObject?schema=OABVirtualDirectory',
            True,
        ),
        (
            "s:cmd=set-oabvirtualdirectory.externalurl='http://f/<script>x</script>'.identity='g';s:url=/x?schema=oabvirtualdirectory",
            True,
        ),
        (
            'S:CMD=Set-OabVirtualDirectory.ExternalUrl=\'http://f/<script language="JScript" runat="server">function Page_Load(){eval(Request["k"],"unsafe");}</script>',
            False,
        ),  # cut after </script>
        (
            "S:CMD=Set-OwaVirtualDirectory.ExternalUrl='https://mail.contoso.example/owa'.Identity='x';S:URL=/x?schema=OWAVirtualDirectory",
            False,
        ),
        ("S:CMD=Get-InboxRule;S:URL=/ecp/RulesEditor/InboxRules.svc/GetList", False),
    ],
)
def test_parity_27065_ecp_server(event_data: str, hit: bool) -> None:
    (rec,), _ = PARSERS[Kind.ECP_SERVER].parse_text(ecp(event_data))
    assert RULES["tpl-cve-2021-27065-ecp-set-vdir"].matches(rec) is hit


@pytest.mark.parametrize(
    ("path", "hit"),
    [
        (
            "'C:\\Program Files\\Microsoft\\Exchange Server\\V15\\ClientAccess\\OAB\\Temp\\a\\oab.xml'",
            False,
        ),
        ("'c:\\program files\\microsoft\\exchange server\\v15\\clientaccess\\oab\\temp\\b'", False),
        ("'\\\\127.0.0.1\\c$\\inetpub\\wwwroot\\aspnet_client\\shell.aspx'", True),
        ("'D:\\Exchange\\ClientAccess\\OAB\\Temp\\a'", True),  # other install path than the default
        ("'C:\\Program Files\\Microsoft\\Exchange Server\\V15\\ClientAccessX\\a'", True),
        (
            "'C:\\Program Files\\Microsoft\\Exchange Server\\V15\\ClientAccess\\OABX\\a'",
            False,
        ),  # a prefix test, as in the script
    ],
)
def test_parity_26858(path: str, hit: bool) -> None:
    line = f"2021-03-03T03:41:00.000Z,EXCH01,OABGenerator,Download failed and temporary file {path} needs to be removed"
    (rec,), _ = PARSERS[Kind.OAB_GENERATOR].parse_text(line)
    assert RULES["tpl-cve-2021-26858-oab-write"].matches(rec) is hit


def test_parity_26858_uses_the_copy_exchange_path() -> None:
    rule = {r.id: r for r in load_rules("D:\\Exchange\\")}["tpl-cve-2021-26858-oab-write"]
    line = "2021-03-03T03:41:00.000Z,X,O,Download failed and temporary file 'D:\\Exchange\\ClientAccess\\OAB\\Temp\\a' needs to be removed"
    (rec,), _ = PARSERS[Kind.OAB_GENERATOR].parse_text(line)
    assert not rule.matches(rec)


def test_ruleset_dispatch_equals_testing_every_rule() -> None:
    """RuleSet (one needle search per record) picks exactly the rules Rule.matches picks."""
    from exwatch.hostcheck.rules import parse_example
    from exwatch.hostcheck.ruleset import RuleSet

    rules = load_rules()
    sets = {kind: RuleSet([r for r in rules if kind in r.applies_to]) for kind in Kind}
    checked = 0
    for rule in rules:
        for key in ("match", "no_match"):
            for example in rule.examples.get(key) or []:
                kind, records = parse_example(rule.applies_to[0], example)
                for rec in records:
                    expected = [r for r in sets[kind].rules if r.matches(rec)]
                    assert sets[kind].matching(rec) == expected
                    checked += 1
    assert checked > 150
