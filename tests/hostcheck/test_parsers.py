# ruff: noqa: E501  (log lines and fixture rows are kept whole on purpose)
"""Parsers: real formats, odd encodings, repeated headers, truncation, give-up."""

from __future__ import annotations

import json
from pathlib import Path

from hostcheck_logfmt import HP_HEADER, IIS_HEADER, evtx, hp, iis  # type: ignore[import-not-found]

from exwatch.hostcheck.parsers import PARSERS
from exwatch.hostcheck.parsers.evtx import record_from_json
from exwatch.hostcheck.records import FileStats, Kind, Record

FIX = Path(__file__).parent / "fixtures"


def parse(
    kind: Kind, path: Path, meta: dict[str, str] | None = None
) -> tuple[list[Record], FileStats]:
    stats = FileStats(file=path.name, kind=kind)
    records = list(PARSERS[kind].parse_file(path, path.name, stats, meta))
    return records, stats


def test_httpproxy_maps_by_header_and_aliases(tmp_path: Path) -> None:
    f = tmp_path / "HttpProxy_2021030303-1.LOG"
    f.write_text(
        HP_HEADER.format(date="x") + hp(AnchorMailbox="Sid~S-1-5-21-1", UrlQuery="?a=1,b") + "\n"
    )
    (rec,), stats = parse(Kind.HTTPPROXY, f)
    assert stats.records == 1
    assert stats.bad_lines == 0
    assert stats.truncated_lines == 0
    assert not stats.warnings
    assert rec.get("AnchorMailbox") == "Sid~S-1-5-21-1"
    assert rec.get("url_query") == "?a=1,b"  # CSV-quoted value with a comma
    assert rec.get("client_ip") == "198.51.100.21"
    assert rec.timestamp == "2021-03-03T03:06:27.123Z"


def test_older_build_with_fewer_columns(tmp_path: Path) -> None:
    # A build without UrlHost/RoutingType: the file's own header decides.
    f = tmp_path / "old.log"
    f.write_text(
        "#Log-type: HttpProxy Logs\n#Fields: DateTime,RequestId,UrlStem,AnchorMailbox,HttpStatus\n"
        "2021-03-03T03:00:00.000Z,r1,/ecp/y.js,ServerInfo~a]@x:444/ecp/a#,200\n"
    )
    (rec,), stats = parse(Kind.HTTPPROXY, f)
    assert rec.get("urlstem") == "/ecp/y.js"
    assert rec.get("AnchorMailbox").startswith("ServerInfo~")
    assert rec.get("UrlHost") == ""
    assert stats.truncated_lines == 0


def test_w3c_repeated_headers_changed_columns_and_truncated_line(tmp_path: Path) -> None:
    f = tmp_path / "u_ex210305.log"
    f.write_bytes(
        (
            IIS_HEADER.format(date="2021-03-05 00:00:00")
            + iis(stem="/owa/", cip="192.0.2.1")
            + "\n#Software: Microsoft Internet Information Services 10.0\n"
            "#Fields: date time c-ip cs-method cs-uri-stem sc-status\n"
            "2021-03-05 04:00:00 192.0.2.2 POST /ecp/y.js 200\n"
            "2021-03-05 04:00:01 192.0.2.3 GET\n"
        ).encode()
    )
    records, stats = parse(Kind.IIS, f)
    assert [r.get("client_ip") for r in records] == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    assert records[1].get("method") == "POST"
    assert records[1].get("status") == "200"
    assert records[0].get("cs-username") == ""  # "-" is empty
    assert stats.header_blocks == 2
    assert stats.truncated_lines == 1
    assert records[1].timestamp == "2021-03-05T04:00:00Z"


def test_utf16_and_cp1252_and_nul_tail(tmp_path: Path) -> None:
    f16 = tmp_path / "u16.log"
    f16.write_bytes((IIS_HEADER.format(date="d") + iis(stem="/owa/é") + "\n").encode("utf-16"))
    (rec,), _ = parse(Kind.IIS, f16)
    assert rec.get("url_stem") == "/owa/é"
    fcp = tmp_path / "cp.log"
    fcp.write_bytes(
        IIS_HEADER.format(date="d").encode()
        + iis(stem="/owa/\xe9").encode("cp1252")
        + b"\n"
        + b"\x00" * 5000
    )
    (rec,), stats = parse(Kind.IIS, fcp)
    assert rec.get("url_stem") == "/owa/é"
    assert stats.decode_fallbacks == 1
    assert stats.bad_lines == 0


def test_junk_lines_never_end_a_file(tmp_path: Path) -> None:
    """Issue 11 #2: on main the parser stopped after 100 junk lines in a row, and an attack
    line after them was never read.  Junk is counted, its line ranges kept, and skipped."""
    f = tmp_path / "garbage.log"
    lines = [IIS_HEADER.format(date="d") + iis()] + [f"\x01garbage line {i}" for i in range(1000)]
    f.write_text("\n".join(lines) + "\n" + iis(stem="/aspnet_client/x.aspx") + "\n")
    records, stats = parse(Kind.IIS, f)
    assert [r.get("url_stem") for r in records] == ["/owa/", "/aspnet_client/x.aspx"]
    assert not stats.gave_up
    assert stats.bad_lines == 1000
    header_lines = IIS_HEADER.count("\n")
    assert stats.bad_ranges == [[header_lines + 2, header_lines + 1001]]


def test_overlong_line_is_skipped_not_loaded(tmp_path: Path) -> None:
    from exwatch.hostcheck.parsers.lines import MAX_LINE_BYTES

    f = tmp_path / "long.log"
    with f.open("wb") as fh:
        fh.write(IIS_HEADER.format(date="d").encode())
        fh.write(b"2021-03-05 " + b"A" * (MAX_LINE_BYTES * 2) + b"\n")
        fh.write(iis().encode() + b"\n")
    records, stats = parse(Kind.IIS, f)
    assert len(records) == 1
    assert stats.bad_lines == 1


def test_no_header_uses_default_fields_with_warning() -> None:
    records, stats = PARSERS[Kind.IIS].parse_text(iis(cip="192.0.2.9"))
    assert records[0].get("client_ip") == "192.0.2.9"
    assert any("default columns" in w for w in stats.warnings)


def test_test_proxylogon_output_csv_is_read_as_httpproxy() -> None:
    f = FIX / "tpl_output" / "EXCH01-Cve-2021-26855.csv"
    (rec,), stats = parse(Kind.HTTPPROXY, f)
    assert rec.get("ClientIPAddress") == "130.255.189.21"
    assert rec.get("anchormailbox").startswith("ServerInfo~")
    assert stats.bad_lines == 0


def test_oab_download_path_is_derived_with_quotes() -> None:
    line = "2021-03-03T03:41:00.000Z,EXCH01,OABGenerator,Download failed and temporary file '\\\\127.0.0.1\\c$\\x.aspx' needs to be removed"
    (rec,), _ = PARSERS[Kind.OAB_GENERATOR].parse_text(line)
    assert rec.get("download_path") == "'\\\\127.0.0.1\\c$\\x.aspx'"
    assert rec.timestamp == "2021-03-03T03:41:00.000Z"


def test_evtx_mapping_of_library_json_shape() -> None:
    # No real .evtx can be produced here: the mapping is tested on the JSON shape that
    # pyevtx-rs emits (records_json), with events constructed after the OTRF dataset.
    event = json.loads(
        evtx(
            "MSExchange CmdletLogs",
            1,
            4,
            ["Set-OabVirtualDirectory", "-ExternalUrl 'http://f/<script>'", "NT AUTHORITY\\SYSTEM"],
        )
    )
    rec = record_from_json(event, "MSExchange Management.evtx", 7)
    assert rec.get("cmdlet") == "Set-OabVirtualDirectory"
    assert rec.get("caller") == "NT AUTHORITY\\SYSTEM"
    assert rec.get("event_id") == "1"
    assert rec.timestamp == "2021-08-13T10:21:44.310000Z"
    app = json.loads(
        evtx(
            "MSExchange Unified Messaging",
            1038,
            2,
            ["a", "System.InvalidCastException"],
            channel="Application",
        )
    )
    rec = record_from_json(app, "Application.evtx", 1)
    assert rec.get("event_id") == "1038"
    assert rec.get("level") == "2"
    assert "InvalidCast" in rec.get("data")


def test_corrupt_evtx_is_an_error_not_a_crash(tmp_path: Path) -> None:
    f = tmp_path / "Application.evtx"
    f.write_bytes(b"MZ" + b"\x00" * 4096)
    records, stats = parse(Kind.EVTX, f)
    assert records == []
    assert stats.error == "not an EVTX file (no ElfFile header)"
    f.write_bytes(
        b"ElfFile\x00" + b"\x00" * 4096
    )  # right magic, no chunks: the library reads nothing
    records, stats = parse(Kind.EVTX, f)
    assert records == []
    assert stats.error or stats.warnings
