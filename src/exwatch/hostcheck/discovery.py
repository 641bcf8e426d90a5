"""Find the files that matter anywhere under a copy, whatever its layout.

KAPE keeps full Windows paths (`C/Program Files/Microsoft/Exchange Server/V15/Logging/...`),
ExchangeLogCollector renames folders (`<Server>/ECP_Proxy_Logs/`), Test-ProxyLogon's
`-CollectFiles` flattens (`CVE26855/`), and a responder may hand over a bare folder of
logs.  So a log's kind is decided by its own header first (`#Log-type:`, `#Software:`),
by its name and folders second, all case-insensitively; web files, LSASS dumps and
archives are found by path.  Every `.evtx` is read (its channel decides what it is, the
name only hints); JSON event exports are recognised by their first bytes; JSON exports and
EVTX files inside `.zip` archives are read in place.  The inventory says what is missing,
so an empty copy is never mistaken for a clean server.
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from exwatch.hostcheck.records import Kind

# Exchange's protocol folders under Logging/HttpProxy (and ExchangeLogCollector's names).
HTTPPROXY_FOLDERS = {
    "autodiscover": "autodiscover", "eas": "eas", "ecp": "ecp", "ews": "ews", "mapi": "mapi",
    "oab": "oab", "owa": "owa", "owacalendar": "owacalendar", "powershell": "powershell",
    "rpchttp": "rpchttp", "ecp_proxy_logs": "ecp", "autodiscover_proxy_logs": "autodiscover",
    "eas_proxy_logs": "eas", "ews_proxy_logs": "ews", "mapi_proxy_logs": "mapi",
    "oab_proxy_logs": "oab", "owa_proxy_logs": "owa", "owacalendar_proxy_logs": "owacalendar",
    "powershell_proxy_logs": "powershell", "rpchttp_proxy_logs": "rpchttp",
}  # fmt: skip
LOG_SUFFIXES = (".log", ".txt", ".csv")
WEB_SUFFIXES = (
    ".aspx",
    ".ashx",
    ".asmx",
    ".asax",
    ".asp",
    ".cshtml",
    ".config",
    ".compiled",
    ".js",
)
ARCHIVE_SUFFIXES = (".7z", ".zip", ".rar")
_LSASS = re.compile(r"lsass.*dmp", re.IGNORECASE)
# Folders whose every file is scanned (web roots where shells are dropped).
WEB_FOLDER_MARKERS = (
    "/aspnet_client/", "/inetpub/wwwroot/", "/frontend/httpproxy/", "/clientaccess/",
    "/temporary asp.net files/", "/programdata/",
)  # fmt: skip
SNIFF_BYTES = 4096
MAX_SCAN_BYTES = 32 << 20  # files above this are listed, not scanned for content
EXPORT_SUFFIXES = (".json", ".jsonl", ".ndjson")
# Keys (lower case, quoted) that only event exports have near their start.
_EXPORT_MARKERS = ('"eventid"', '"eventcode"', '"event_id"', '"winlog"', "<event ")
# Zip members: how many are looked at, and which are too big or too compressed to be
# anything but a bomb (a real export compresses about 50:1).
MAX_ZIP_MEMBERS = 10_000
MAX_MEMBER_BYTES = 8 << 30
MAX_ZIP_RATIO = 500
# Text log kind -> coverage source (result.SOURCES).
KIND_SOURCES = {
    Kind.HTTPPROXY: "httpproxy",
    Kind.IIS: "iis",
    Kind.ECP_SERVER: "ecp-server",
    Kind.OAB_GENERATOR: "oab-generator",
    Kind.CMDLET: "cmdlet-logs",
}
# EVTX file name (lower case, KAPE keeps Windows' names) -> the source it probably holds;
# the records' own channel decides.
_EVTX_NAME_HINTS = (
    ("msexchange management", "evtx:msexchange-management"),
    ("msexchange%4management", "evtx:msexchange-management"),
    ("sysmon", "evtx:sysmon"),
    ("powershell", "evtx:powershell"),
    ("windows defender", "evtx:defender"),
    ("application.evtx", "evtx:application"),
    ("security.evtx", "evtx:security"),
    ("system.evtx", "evtx:system"),
)


@dataclass(slots=True)
class LogFile:
    path: Path
    rel: str
    kind: Kind
    folder: str = ""  # HttpProxy protocol folder when the layout tells it
    fmt: str = "text"  # "text" (by kind), "evtx", or "json" (an event export)
    member: str | None = None  # name inside the zip archive at `path`
    source: str | None = None  # coverage source it probably feeds (when it gives nothing)


@dataclass(slots=True)
class Inventory:
    root: Path
    logs: list[LogFile] = field(default_factory=list)
    web_files: list[str] = field(default_factory=list)  # relative paths scanned for content
    lsass_dumps: list[str] = field(default_factory=list)
    archives: list[str] = field(default_factory=list)  # archives under ProgramData
    web_folders: dict[str, bool] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)
    total_files: int = 0

    def logs_of(self, kind: Kind) -> list[LogFile]:
        return [f for f in self.logs if f.kind is kind]


def relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _sniff(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError:
        return ""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", errors="replace").lower()
    return head.decode("utf-8", errors="replace").lower()


def classify_log(lpath: str, name: str, head: str) -> Kind | None:
    """Kind of a text log from its header, then its name and folders (all lower case)."""
    if "#log-type: httpproxy logs" in head:
        return Kind.HTTPPROXY
    if "#log-type: ecp server log" in head:
        return Kind.ECP_SERVER
    if "#log-type: ecp activity" in head:
        return None  # same four columns as ECP Server but no cmdlets; not read
    if "#log-type:" in head and "cmdlet" in head.split("#log-type:", 1)[1][:60]:
        return Kind.CMDLET
    if "#software: microsoft internet information services" in head or "#fields: date time" in head:
        return Kind.IIS
    if "#log-type:" in head and "oab" in head.split("#log-type:", 1)[1][:60]:
        return Kind.OAB_GENERATOR
    if "#log-type:" in head:
        return None  # another Exchange log (EWS, MessageTracking...): not read
    if "oabgenerator" in lpath or "oab_generation" in lpath or "cve26858" in lpath:
        return Kind.OAB_GENERATOR
    if "download failed and temporary file" in head:
        return Kind.OAB_GENERATOR
    if "/ecp/server/" in lpath or name.startswith("ecpserver") or "cve27065" in lpath:
        if "anchormailbox" in head:
            return Kind.HTTPPROXY
        return Kind.ECP_SERVER
    if (
        "/httpproxy/" in lpath
        or name.startswith("httpproxy_")
        or "_proxy_logs/" in lpath
        or "cve26855" in lpath
        or "anchormailbox" in head
    ):
        return Kind.HTTPPROXY
    if "/w3svc" in lpath or re.match(r"u_ex\d{6}", name):
        return Kind.IIS
    if "cmdlet" in lpath and "/cmdletinfra/" in lpath:
        return Kind.CMDLET
    return None


def evtx_source_hint(lname: str) -> str | None:
    for needle, source in _EVTX_NAME_HINTS:
        if needle in lname:
            return source
    return None


def looks_like_export(head: str) -> bool:
    """Does the start of a .json file look like Windows events (any export shape)?"""
    return any(m in head for m in _EXPORT_MARKERS) or ('"system"' in head and '"eventdata"' in head)


def zip_members(path: Path, rel: str, inv: Inventory) -> None:
    """Event logs inside a zip archive, read in place (never extracted to the copy)."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()[:MAX_ZIP_MEMBERS]
            for info in infos:
                lname = info.filename.lower()
                if info.is_dir() or not lname.endswith((".evtx", *EXPORT_SUFFIXES)):
                    continue
                where = f"{rel}!{info.filename}"
                ratio = info.file_size / max(info.compress_size, 1)
                if info.file_size > MAX_MEMBER_BYTES or (
                    ratio > MAX_ZIP_RATIO and info.file_size > 1 << 20
                ):
                    inv.unreadable.append(f"{where}: {info.file_size} bytes, ratio {ratio:.0f}")
                    continue
                base = lname.rsplit("/", 1)[-1]
                if lname.endswith(".evtx"):
                    inv.logs.append(
                        LogFile(path, where, Kind.EVTX, fmt="evtx", member=info.filename,
                                source=evtx_source_hint(base))
                    )  # fmt: skip
                else:
                    inv.logs.append(
                        LogFile(path, where, Kind.EVTX, fmt="json", member=info.filename)
                    )
    except (OSError, zipfile.BadZipFile, ValueError, NotImplementedError) as exc:
        inv.unreadable.append(f"{rel}: not a readable zip archive ({exc})")


def httpproxy_folder(lpath: str) -> str:
    parts = lpath.split("/")[:-1]
    for i, part in enumerate(parts):
        if part in HTTPPROXY_FOLDERS and (
            i == 0 or parts[i - 1] == "httpproxy" or part.endswith("_proxy_logs")
        ):
            return HTTPPROXY_FOLDERS[part]
    return ""


def discover(root: Path) -> Inventory:
    inv = Inventory(root=root)
    for marker in ("aspnet_client", "owa/auth", "ecp/auth", "inetpub/wwwroot"):
        inv.web_folders[marker] = False
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        base = Path(dirpath)
        ldir = "/" + relative(root, base).lower() + "/" if base != root else "/"
        for marker in inv.web_folders:
            if f"/{marker}/" in ldir:
                inv.web_folders[marker] = True
        for name in sorted(filenames):
            path = base / name
            if path.is_symlink() or not path.is_file():
                continue
            inv.total_files += 1
            rel = relative(root, path)
            lname = name.lower()
            lpath = "/" + rel.lower()
            if _LSASS.search(lname):
                inv.lsass_dumps.append(rel)
            if lname.endswith(ARCHIVE_SUFFIXES) and "/programdata/" in lpath:
                inv.archives.append(rel)
            if lname.endswith(".evtx"):
                inv.logs.append(
                    LogFile(path, rel, Kind.EVTX, fmt="evtx", source=evtx_source_hint(lname))
                )
                continue
            if lname.endswith(EXPORT_SUFFIXES) and looks_like_export(_sniff(path)):
                inv.logs.append(LogFile(path, rel, Kind.EVTX, fmt="json"))
                continue
            if lname.endswith(".zip"):
                zip_members(path, rel, inv)
            if lname.endswith(LOG_SUFFIXES) or "." not in lname:
                kind = classify_log(lpath, lname, _sniff(path))
                if kind is not None:
                    folder = httpproxy_folder(lpath) if kind is Kind.HTTPPROXY else ""
                    inv.logs.append(LogFile(path, rel, kind, folder, source=KIND_SOURCES[kind]))
                    continue
            if lname.endswith(WEB_SUFFIXES) or any(m in lpath for m in WEB_FOLDER_MARKERS):
                inv.web_files.append(rel)
    return inv


__all__ = [
    "HTTPPROXY_FOLDERS",
    "KIND_SOURCES",
    "Inventory",
    "LogFile",
    "classify_log",
    "discover",
    "looks_like_export",
]
