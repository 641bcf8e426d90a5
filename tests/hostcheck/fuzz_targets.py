# ruff: noqa: E501  (log lines are kept whole on purpose)
"""Fuzz targets for every hostcheck parser of attacker-controlled data, with their
hypothesis strategies.  `test_fuzz.py` runs each briefly (derandomised, in CI);
`bench/fuzz_hostcheck.py` runs them for as long as asked.  A target raises only on a real
defect: an exception escaping a parser, or the block scanner disagreeing with the line path.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evtx_writer import event, evtx_bytes  # type: ignore[import-not-found]
from hostcheck_logfmt import ECP_HEADER, HP_HEADER, IIS_HEADER, RPS_HEADER, ecp, hp, iis, rps  # type: ignore[import-not-found]
from hypothesis import strategies as st

from exwatch.hostcheck import rps_cat
from exwatch.hostcheck.checker import run_hostcheck
from exwatch.hostcheck.parsers.eventexport import EventExportParser
from exwatch.hostcheck.parsers.events import parse_event_xml, record_from_event
from exwatch.hostcheck.parsers.evtx import EvtxParser
from exwatch.hostcheck.records import FileStats, Kind

# Where each text format lives in a copy, its header, and lines of it (benign and attack).
FORMATS: dict[str, tuple[str, str, list[str]]] = {
    "httpproxy": (
        "C/Program Files/Microsoft/Exchange Server/V15/Logging/HttpProxy/Ecp/HttpProxy_2021030303-1.LOG",
        HP_HEADER.format(date="2021-03-03T03:00:00.000Z"),
        [
            hp(),
            hp(
                AnchorMailbox="ServerInfo~a]@x:444/ecp/DDI/DDIService.svc/SetObject?schema=ResetOABVirtualDirectory#"
            ),
            hp(
                Protocol="Owa",
                UrlStem="/owa/",
                AnchorMailbox="Sid~S-1-5-21-1",
                Method="GET",
                UserAgent="Mozilla/5.0 (X)",
            ),
        ],
    ),
    "iis": (
        "C/inetpub/logs/LogFiles/W3SVC1/u_ex210305.log",
        IIS_HEADER.format(date="2021-03-05 00:00:00"),
        [
            iis(),
            iis(method="POST", stem="/aspnet_client/x.aspx", query="cmd=whoami"),
            iis(
                stem="/autodiscover/autodiscover.json",
                query="@x/powershell/?X-Rps-CAT=VgEA&Email=autodiscover/autodiscover.json%3F@x",
            ),
        ],
    ),
    "ecp": (
        "C/Program Files/Microsoft/Exchange Server/V15/Logging/ECP/Server/ECPServer20210303-1.LOG",
        ECP_HEADER.format(date="2021-03-03T00:00:00.000Z"),
        [
            ecp("S:TIME=13;S:CMD=Get-InboxRule;S:RS=0", ts="2021-03-03T00:02:33.966Z"),
            ecp(
                "S:CMD=Set-OabVirtualDirectory.ExternalUrl='http://f/<script language=\"JScript\">x</script>'.Identity='1';S:URL=/ecp/x?schema=OABVirtualDirectory",
                ts="2021-03-03T03:01:24.000Z",
            ),
        ],
    ),
    "cmdlet": (
        "C/Program Files/Microsoft/Exchange Server/V15/Logging/CmdletInfra/Powershell-Proxy/Cmdlet/Rps_Cmdlet_2021081310-1.LOG",
        RPS_HEADER.format(date="2021-08-13T09:00:00.000Z"),
        [
            rps(),
            rps(
                Cmdlet="New-MailboxExportRequest",
                Parameters='-Mailbox "a" -FilePath "\\\\localhost\\c$\\inetpub\\wwwroot\\aspnet_client\\x.aspx"',
            ),
        ],
    ),
}

_JUNK = st.text(alphabet=st.sampled_from(list(',"# \t\r\n\x00;=/:.-aZ09é\u009b\x1b')), max_size=60)


def text_log_lines(fmt: str) -> st.SearchStrategy[list[str]]:
    """Lines of a log: real ones, real ones cut or spliced, junk, repeated headers."""
    _, header, real = FORMATS[fmt]
    header_lines = [h for h in header.splitlines() if h]
    line = st.one_of(
        st.sampled_from(real),
        st.sampled_from(header_lines),
        st.builds(lambda r, n: r[:n], st.sampled_from(real), st.integers(0, 200)),
        st.builds(lambda r, j: r + j, st.sampled_from(real), _JUNK),
        st.builds(lambda j, r: j + r, _JUNK, st.sampled_from(real)),
        _JUNK,
    )
    return st.lists(line, max_size=40)


def text_log_target(fmt: str, lines: list[str], block_size: int) -> None:
    """The block scanner and the line-by-line path agree on findings and file counts."""
    rel, header, _ = FORMATS[fmt]
    root = Path(tempfile.mkdtemp(prefix="exwatch-fuzz-"))
    try:
        path = root / rel
        path.parent.mkdir(parents=True)
        path.write_bytes((header + "\n".join(lines) + "\n").encode("utf-8", errors="surrogatepass"))
        slow = run_hostcheck(root, scan_files=False, block_scan=False)
        fast = run_hostcheck(root, scan_files=False, block_scan=True, block_size=block_size)
        assert [f.to_json() for f in fast.findings] == [f.to_json() for f in slow.findings]
        assert [s.to_json() for s in fast.files] == [s.to_json() for s in slow.files]
        fast.to_json_text()
    finally:
        shutil.rmtree(root, ignore_errors=True)


_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.text(max_size=30))
_KEYS = st.sampled_from([
    "Event", "System", "EventData", "UserData", "Data", "#text", "#attributes", "Provider", "Name",
    "EventID", "EventCode", "Channel", "LogName", "SourceName", "Message", "TimeCreated", "SystemTime",
    "@timestamp", "winlog", "event_data", "channel", "provider_name", "event_id", "result", "_raw",
    "Image", "ParentImage", "CommandLine", "hits", "_source", "value", "Level", "EventData ",
]) | st.text(max_size=12)  # fmt: skip
JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    _SCALAR,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=6),
    max_leaves=30,
)


def event_mapping_target(obj: Any) -> None:
    """Any JSON value maps to a Record of strings, or to None; never an exception."""
    rec = record_from_event(obj, "fuzz", 1)
    if rec is not None:
        assert rec.kind is Kind.EVTX
        assert all(isinstance(v, str) for v in rec.extra.values())
        rec.get("cmdlet")
        rec.get("_url_decoded")


def export_bytes() -> st.SearchStrategy[bytes]:
    values = st.lists(JSON_VALUES, max_size=5).map(lambda vs: "\n".join(json.dumps(v) for v in vs))
    return st.one_of(
        st.binary(max_size=300),
        values.map(str.encode),
        st.builds(lambda t, cut: t.encode()[:cut], values, st.integers(0, 400)),
        st.builds(lambda t: ("Record 1\n" + t).encode("utf-16"), values),
    )


def export_target(data: bytes) -> None:
    stats = FileStats(file="fuzz.json", kind=Kind.EVTX)
    records = list(EventExportParser().parse_stream(io.BytesIO(data), "fuzz.json", stats))
    assert stats.records == len(records)


def event_xml_target(text: str) -> None:
    parsed = parse_event_xml(text)
    if parsed is not None:
        record_from_event(parsed, "fuzz", 1)


XML_TEXT = st.one_of(
    st.text(max_size=200),
    st.builds(
        lambda body: (
            f"<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'>{body}</Event>"
        ),
        st.text(alphabet=st.sampled_from(list("<>/=' \"abEventDataNmSysChl1")), max_size=120),
    ),
)

_BASE_EVTX = evtx_bytes(
    [event(channel="Microsoft-Windows-Sysmon/Operational", provider="Microsoft-Windows-Sysmon", event_id=1,
           data={"Image": "C:\\Windows\\System32\\cmd.exe", "N": str(i)}, record_id=i) for i in range(1, 9)],
    records_per_chunk=3,
)  # fmt: skip


def evtx_damage() -> st.SearchStrategy[bytes]:
    """A valid EVTX with bytes overwritten, and maybe cut."""
    edit = st.tuples(st.integers(0, len(_BASE_EVTX) - 1), st.binary(min_size=1, max_size=16))
    return st.builds(
        lambda edits, cut: _apply(edits)[:cut],
        st.lists(edit, max_size=6),
        st.integers(0, len(_BASE_EVTX)),
    )


def _apply(edits: list[tuple[int, bytes]]) -> bytes:
    blob = bytearray(_BASE_EVTX)
    for at, data in edits:
        blob[at : at + len(data)] = data[: len(blob) - at]
    return bytes(blob)


def evtx_target(data: bytes) -> None:
    """Damage never raises; at most the undamaged file's records come out."""
    stats = FileStats(file="fuzz.evtx", kind=Kind.EVTX)
    records = list(EvtxParser().parse_stream(io.BytesIO(data), "fuzz.evtx", stats))
    assert len(records) == stats.records <= 8


def rps_cat_target(token: str) -> None:
    out = rps_cat.decode(token)
    out.to_json()
    rps_cat.extract_token("X-Rps-CAT=" + token)


RPS_TOKENS = st.one_of(
    st.text(max_size=80),
    st.binary(max_size=120).map(lambda b: __import__("base64").b64encode(b).decode()),
    st.builds(
        lambda cut: rps_cat.encode("a@b", "S-1-5-21-1", ["S-1-5-32-544"])[:cut], st.integers(0, 80)
    ),
)

# name -> (strategy, target); text logs take (lines, block size).
TARGETS: dict[str, tuple[st.SearchStrategy[Any], Callable[..., None]]] = {
    **{
        f"text-{fmt}": (
            st.tuples(text_log_lines(fmt), st.sampled_from([7, 64, 4096])),
            lambda args, fmt=fmt: text_log_target(fmt, *args),
        )
        for fmt in FORMATS
    },
    "event-mapping": (JSON_VALUES, event_mapping_target),
    "event-export": (export_bytes(), export_target),
    "event-xml": (XML_TEXT, event_xml_target),
    "evtx": (evtx_damage(), evtx_target),
    "rps-cat": (RPS_TOKENS, rps_cat_target),
}

__all__ = ["TARGETS"]
