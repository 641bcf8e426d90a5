# ruff: noqa: E501  (log lines are kept whole on purpose)
"""The block scanner against the line-by-line reference path: same findings, same counts."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from hostcheck_logfmt import (  # type: ignore[import-not-found]
    HP_HEADER,
    IIS_HEADER,
    hp,
    iis,
)

from exwatch.hostcheck.checker import run_hostcheck
from exwatch.hostcheck.parsers import PARSERS
from exwatch.hostcheck.parsers.blockscan import scan_file
from exwatch.hostcheck.parsers.fielded import FieldedParser
from exwatch.hostcheck.prefilter import regex_needles
from exwatch.hostcheck.records import FileStats, Kind
from exwatch.hostcheck.rules import kind_prefilter, load_rules, selftest

FIX = Path(__file__).parent / "fixtures"
HP_DIR = "C/Program Files/Microsoft/Exchange Server/V15/Logging/HttpProxy"
IIS_DIR = "C/inetpub/logs/LogFiles/W3SVC1"


def _outcome(root: Path, **kw: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    result = run_hostcheck(root, scan_files=False, **kw)
    return [f.to_json() for f in result.findings], [s.to_json() for s in result.files]


def _assert_same(root: Path, block_size: int) -> list[dict[str, Any]]:
    slow = _outcome(root, block_scan=False)
    fast = _outcome(root, block_scan=True, block_size=block_size)
    assert fast[0] == slow[0]
    assert fast[1] == slow[1]
    return slow[0]


@pytest.mark.parametrize("fixture", ["kape", "clean_flat", "tpl_output"])
@pytest.mark.parametrize("block_size", [7, 300, 1 << 20])
def test_fixtures_same_as_line_path(fixture: str, block_size: int) -> None:
    _assert_same(FIX / fixture, block_size)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


ATTACK_HP: str = hp(
    AnchorMailbox="ServerInfo~a]@exch01:444/ecp/DDI/DDIService.svc/GetObject?schema=OABVirtualDirectory#",
    ClientIpAddress="130.255.189.21",
)
BENIGN_HP: str = hp(
    Protocol="Owa",
    UrlStem="/owa/service.svc",
    Method="GET",
    UserAgent="Mozilla/5.0 (Windows NT 10.0, x64)",
    AnchorMailbox="Sid~S-1-5-21-1-2-3-1104",
    ClientIpAddress="192.0.2.7",
)


def _unterminated_quote() -> str:
    # csv reads the open quote to the line end (one field); a comma count sees two.
    fields = BENIGN_HP.replace('"Mozilla/5.0 (Windows NT 10.0, x64)"', "curl/7.68.0").split(",")
    del fields[-2]
    fields[-1] = '"Cafe,V1'
    return ",".join(fields)


def _odd_httpproxy() -> bytes:
    """A HttpProxy file with every kind of line the bulk path must hand over."""
    header: bytes = HP_HEADER.format(date="2021-03-01T00:00:00.000Z").encode()
    rows: list[str] = [
        BENIGN_HP,
        ATTACK_HP,
        "",  # blank
        "   ",
        "# a comment",
        BENIGN_HP.replace("192.0.2.7", "192.0.2.8")
        + ",extra,fields",  # more fields: truncated count
        BENIGN_HP[:200],  # fewer fields
        BENIGN_HP.replace("Mozilla", 'Mo"zilla'),  # a quote inside an unquoted field
        _unterminated_quote(),
        BENIGN_HP.replace("2021-03-03T03:06:27.123Z", "2021-03-03T03:06:27Z", 1),  # short timestamp
        BENIGN_HP.replace("2021-03-03T03:06:27.123Z", "2021-03-03T03:06:27.100Z", 1).replace(
            "Sid~", "Sïd~"
        ),
        ATTACK_HP.replace("ServerInfo~", "ServerInfo\x00~"),  # NUL inside the needle
        ATTACK_HP.replace("ServerInfo~", "\u212aServerInfo~"),  # Kelvin sign: non-ASCII
        "garbage line without a timestamp",
        ATTACK_HP.replace("2021-03-03T03:06:27.123Z", "2021-03-04T00:00:00.000Z", 1) + "\r",  # CRLF
        BENIGN_HP + "\rstray",  # a carriage return inside the line
        ATTACK_HP.replace("ServerInfo~", "SERVERINFO~").replace("2021-03-03", "2019-01-01", 1),
    ]
    body = "\n".join(rows).encode("utf-8")
    cp1252 = ATTACK_HP.replace("EXCH01", "EXCH\xe901").encode("cp1252")  # not UTF-8
    long_line = b"2021-03-03T03:06:27.123Z," + b"x" * (1 << 20) + b"ServerInfo~a]@x/y#"
    new_header = b"#Fields: DateTime,AnchorMailbox,ClientIpAddress,UrlStem,HttpStatus,Method"
    short_rows = (
        b"2021-03-05T00:00:00.000Z,ServerInfo~a]@x:444/ecp/y#,5.254.43.18,/ecp/y.js,200,POST"
    )
    return (
        b"\xef\xbb\xbf" + header + body + b"\n" + cp1252 + b"\n" + long_line + b"\n"
        + (BENIGN_HP + "\n").encode() * 50 + new_header + b"\n" + short_rows + b"\n"
        + b"DateTime,AnchorMailbox,ClientIpAddress\n" + short_rows + b"\n"
        + ATTACK_HP.encode()  # last line without a newline
    )  # fmt: skip


def _odd_iis() -> bytes:
    header: bytes = IIS_HEADER.format(date="2021-03-05 00:00:00").encode()
    probe: str = iis(
        method="GET", stem="/owa/auth/OutlookEN.aspx", cip="198.51.100.21", status="404"
    )
    rows: list[str] = [
        iis(cip="192.0.2.1"),
        probe,
        iis(cip="192.0.2.2") + " extra",  # more fields than the header: bad
        iis(cip="192.0.2.3").rsplit(" ", 3)[0],  # fewer: truncated
        "#Fields: time date s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken",
        "03:00:00 2021-03-06 10.0.0.5 POST /aspnet_client/x.aspx - 443 - 5.254.43.18 antSword/v2.1 - 200 0 0 1",
        header.decode().strip().splitlines()[-1],  # back to date-first columns
        probe.replace("2021-03-05", "2021-03-07", 1),
    ]
    tail: str = iis(cip="192.0.2.9") + "\n"
    return header + "\n".join(rows).encode() + b"\n" + tail.encode() * 30


def test_odd_lines_same_as_line_path(tmp_path: Path) -> None:
    _write(tmp_path / HP_DIR / "Ecp" / "HttpProxy_2021030100-1.LOG", _odd_httpproxy())
    _write(tmp_path / IIS_DIR / "u_ex210305.log", _odd_iis())
    for block_size in (333, 65536, 1 << 22):
        findings = _assert_same(tmp_path, block_size)
    rules = {f["rule"] for f in findings}
    assert {
        "tpl-cve-2021-26855-ssrf",
        "webshell-page-probe",
        "hafnium-known-source-address",
    } <= rules
    assert len([f for f in findings if f["rule"] == "tpl-cve-2021-26855-ssrf"]) >= 5


def test_match_straddling_block_boundary(tmp_path: Path) -> None:
    """The needle of the one attack line is cut by every block boundary tried."""
    header: bytes = HP_HEADER.format(date="2021-03-01T00:00:00.000Z").encode()
    before = header + (BENIGN_HP + "\n").encode() * 3
    data = before + ATTACK_HP.encode() + b"\n" + (BENIGN_HP + "\n").encode() * 3
    _write(tmp_path / HP_DIR / "Ecp" / "HttpProxy_2021030100-1.LOG", data)
    needle_at = len(before) + ATTACK_HP.index("ServerInfo~")
    for block_size in (needle_at + 3, needle_at // 2 + 2, len(before) + 1, 97):
        findings = _assert_same(tmp_path, block_size)
        assert [f["rule"] for f in findings].count("tpl-cve-2021-26855-ssrf") == 1
        assert findings[0]["line"] == before.count(b"\n") + 1


def test_utf16_and_junk_take_the_line_path(tmp_path: Path) -> None:
    text = HP_HEADER.format(date="2021-03-01T00:00:00.000Z") + ATTACK_HP + "\n"
    _write(tmp_path / HP_DIR / "Ecp" / "HttpProxy_2021030100-1.LOG", text.encode("utf-16"))
    garbage = (
        (iis(cip="5.254.43.18") + "\n").encode()
        + b"?? not a log line\n" * 150
        + (iis(cip="5.254.43.18") + "\n").encode()
    )
    _write(
        tmp_path / IIS_DIR / "u_ex210305.log",
        IIS_HEADER.format(date="2021-03-05 00:00:00").encode() + garbage,
    )
    findings = _assert_same(tmp_path, 50)
    assert {f["rule"] for f in findings} >= {
        "tpl-cve-2021-26855-ssrf",
        "hafnium-known-source-address",
    }
    files = {s["file"]: s for s in _outcome(tmp_path)[1]}
    iis_stats = next(s for s in files.values() if s["kind"] == "iis:w3c:line")
    assert iis_stats["bad_lines"] == 150
    assert iis_stats["records"] == 2  # the line after the junk is read too
    assert sum(f["rule"] == "hafnium-known-source-address" for f in findings) == 2


def test_scan_file_skips_lines_no_rule_can_match(tmp_path: Path) -> None:
    path = tmp_path / "HttpProxy_2021030100-1.LOG"
    header = HP_HEADER.format(date="2021-03-01T00:00:00.000Z")
    path.write_text(header + (BENIGN_HP + "\n") * 100 + ATTACK_HP + "\n", encoding="utf-8")
    parser = PARSERS[Kind.HTTPPROXY]
    assert isinstance(parser, FieldedParser)
    stats = FileStats(file=path.name, kind=Kind.HTTPPROXY)
    records = list(scan_file(parser, path, path.name, stats, None, kind_prefilter(Kind.HTTPPROXY)))
    assert [r.line for r in records] == [header.count("\n") + 101]
    assert stats.records == 101
    assert stats.lines == header.count("\n") + 101


def test_regex_needles_are_literals_every_match_holds() -> None:
    assert regex_needles(r"^/(aspnet_client|ecp/auth|owa/auth)/.*\.(aspx|ashx|asmx)$")[
        -3
    ] == frozenset({"/aspnet_client/", "/ecp/auth/", "/owa/auth/"})
    assert regex_needles(r"a?b*") == ()
    assert frozenset({"<script"}) in regex_needles(r"S:CMD=Set-\w*VirtualDirectory\..*<script")


def test_every_match_example_passes_the_block_prefilter() -> None:
    result = selftest()
    assert not result.problems
    assert load_rules()


def test_bench_data_shape(tmp_path: Path) -> None:
    """The generated benchmark lines (quoted user agents) stay on the bulk path."""
    root = tmp_path / "copy"
    _write(root / HP_DIR / "Owa" / "HttpProxy_2021030100-1.LOG",
           HP_HEADER.format(date="2021-03-01T00:00:00.000Z").encode() + (BENIGN_HP + "\n").encode() * 20)  # fmt: skip
    _assert_same(root, 1000)
    shutil.rmtree(root)


@pytest.mark.parametrize("kind", ["httpproxy", "iis"])
def test_many_header_blocks_cost_nothing_special(tmp_path: Path, kind: str) -> None:
    """Issue 11 #3: concatenated logs with thousands of `#Fields` blocks raised a
    RecursionError after gigabytes of memory on main.  Now one pass, memory bounded by
    the block size, and both paths agree."""
    import tracemalloc

    blocks = 3000
    if kind == "httpproxy":
        block = HP_HEADER.format(date="2021-03-01T00:00:00.000Z") + BENIGN_HP + "\n"
        path = tmp_path / HP_DIR / "Owa" / "HttpProxy_2021030100-1.LOG"
        tail = ATTACK_HP + "\n"
    else:
        block = IIS_HEADER.format(date="2021-03-05 00:00:00") + iis() + "\n"
        path = tmp_path / IIS_DIR / "u_ex210305.log"
        tail = iis(cip="5.254.43.18") + "\n"
    _write(path, (block * blocks + tail).encode())
    tracemalloc.start()
    try:
        findings, files = _outcome(tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert files[0]["records"] == blocks + 1
    assert len(findings) >= 1
    assert peak < 64 << 20, f"peak {peak >> 20} MiB for a {path.stat().st_size >> 10} KiB file"
    _assert_same(tmp_path, 1 << 20)
