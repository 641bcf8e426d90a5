"""The lab's route table: what every web-facing host answers, as data both backends read.

A `Layout` is the shared behaviour of one kind of host (nginx renders it as one include
file of `location` blocks); a `Site` is one host: its address, certificate, Server header,
TLS versions, layout and the per-host variables the layout refers to as `$name` (nginx
`set`s them, the Python backend substitutes them).  A load-balanced host has two or three
variable sets and answers each request of a connection from the next one (round robin,
as a layer-7 balancer without affinity does; Microsoft recommends no affinity for 2013
and later), so what a client sees depends only on its own request sequence.  Keeping this
knowledge in one place is what makes the nginx and the Python backend answer alike.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from exwatch.lab import compromise, pages
from exwatch.lab.builds import LabBuild, load_cu_releases
from exwatch.lab.ntlm import challenge_header
from exwatch.lab.plan import (
    AUTODISCOVER,
    EWS,
    IIS_BY_OS,
    LOGON,
    OWA,
    SERVICE,
    TLS12,
    TLS13,
    Backend,
    Host,
    Plan,
    tls_versions,
)

_FILETIME_2026 = 134_116_992_000_000_000  # a fixed FILETIME: the lab is deterministic

PAGES = ("stock", "custom", "none")
ECP_STATES = ("open", "403", "404", "cu-folder")
EWS_STATES = ("401", "403", "404")
ERROR_PAGE = "/lab-404.html"
APACHE_ERROR_PAGE = "/lab-apache-404.html"
KEEPALIVE_SECONDS = 10
MAX_VARIANTS = 3  # servers behind one balanced address
RR_REQUESTS = 99  # requests per connection the round-robin table covers (then: the first)

# Served content types by file extension; anything else gets DEFAULT_TYPE.
MIME_TYPES = {
    "html": "text/html",
    "htm": "text/html",
    "aspx": "text/html",
    "css": "text/css",
    "ico": "image/x-icon",
    "application": "application/x-ms-application",
    "xml": "text/xml",
    "asp": "text/html",
}
DEFAULT_TYPE = "text/html; charset=utf-8"

# Which challenge to send depends on what the client offered: a type-1 in
# `Authorization: NTLM ...` (or `Negotiate` wrapping raw NTLM) gets this host's type-2.
# Patterns are matched case-insensitively against the Authorization header.
AUTH_KINDS = ((r"^NTLM\s+TlRMTVNTUAAB", "ntlm"), (r"^Negotiate\s+TlRMTVNTUAAB", "nego"))
AUTH_FIRST = {"ntlm": "NTLM $lab_ntlm", "nego": "Negotiate $lab_ntlm", "none": "Negotiate"}
AUTH_SECOND = {"ntlm": "", "nego": "", "none": "NTLM"}

_401 = "<html><head><title>401 - Unauthorized</title></head><body><h2>401 - Unauthorized: Access is denied due to invalid credentials.</h2></body></html>"  # noqa: E501
_500 = "<html><head><title>500 - Internal server error.</title></head><body><h2>500 - Internal server error.</h2></body></html>"  # noqa: E501
_403 = "<html><head><title>403 - Forbidden</title></head><body><h2>403 - Forbidden: Access is denied.</h2></body></html>"  # noqa: E501
_404 = "<html><head><title>404 - File or directory not found.</title></head><body><h2>404 - File or directory not found.</h2></body></html>"  # noqa: E501
_TEXT = {401: _401, 403: _403, 404: _404}

Header = tuple[str, str]  # (name, value template); an empty expanded value sends nothing
_POWERED: tuple[Header, ...] = (("X-Powered-By", "$lab_powered"),)

EXCHANGE_HEADERS: tuple[Header, ...] = (
    ("X-FEServer", "$lab_fe"),
    ("X-Powered-By", "$lab_powered"),
    ("X-AspNet-Version", "$lab_aspnet"),
    ("request-id", "$request_id"),
)
_AUTH_HEADERS: tuple[Header, ...] = (
    ("WWW-Authenticate", "$lab_auth1"),
    ("WWW-Authenticate", "$lab_auth2"),
)
_LOGON_REDIRECT = (
    "https://$lab_host/owa/auth/logon.aspx?url=https%3a%2f%2f$lab_host%2f{app}%2f&reason=0"
)
# Exchange's own endpoints besides OWA and ECP (what stays published when OWA is closed).
_SERVICES = "^/(ews|rpc|mapi|oab|microsoft-server-activesync|powershell)(/|$)"
_AUTODISCOVER = "^/autodiscover(/|$)"
# Exchange Online front ends (msxfaq.de's and public captures' header set).
ONLINE_HEADERS: tuple[Header, ...] = (
    ("X-CalculatedBETarget", "$lab_be_target"),
    ("X-BEServer", "$lab_be"),
    ("X-FEProxyInfo", "$lab_fe_proxy"),
    ("X-FEEFZInfo", "$lab_efz"),
    ("X-FirstHopCafeEFZ", "$lab_efz"),
    ("X-FEServer", "$lab_fe"),
    ("X-OWA-Version", "$lab_owa_owa"),
    ("request-id", "$request_id"),
)
_ONLINE_AUTH: tuple[Header, ...] = (
    (
        "WWW-Authenticate",
        'Bearer client_id="00000002-0000-0ff1-ce00-000000000000", '
        'trusted_issuers="00000001-0000-0000-c000-000000000000@*", '
        'authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize"',
    ),
)
# A phishing kit's fake headers (a public kit's nginx config sets exactly these).
IMPOSTOR_HEADERS: tuple[Header, ...] = (
    ("X-Powered-By", "ASP.NET"),
    ("MicrosoftSharePointTeamServices", "16.0.0.20227"),
    ("X-OWA-Version", "15.20.7595.016"),
    ("X-FEServer", "OUTLOOK-WEB-01"),
    ("X-CalculatedBETarget", "exchange.internal"),
    ("X-BEServer", "EX2019-MBX-01"),
)


@dataclass(frozen=True, slots=True)
class Location:
    """One nginx `location`: how it matches, which headers it adds, what it answers.

    `match` is "=" (exact), "^~" (prefix that skips the regexes), "" (prefix) or "~*"
    (case-insensitive regex).  A location either returns `status` with `text` (the body,
    or the target URL of a 301/302) or serves the first existing `try_files` candidate,
    the last one being "=404".  `builtin` answers `status` with the server's own page
    (nginx `return 404;`); `server` replaces the Server header in this location (a
    reverse proxy passing its backend's, a honeypot's framework showing through).
    """

    match: str
    pattern: str
    headers: tuple[Header, ...] = ()
    status: int | None = None
    text: str = ""
    try_files: tuple[str, ...] = ()
    internal: bool = False
    root: str | None = None
    server: str | None = None
    builtin: bool = False


@dataclass(frozen=True, slots=True)
class Layout:
    """The behaviour shared by hosts of one kind: server-level settings and locations."""

    name: str
    locations: tuple[Location, ...]
    root: str = "$lab_root"
    index: str | None = None
    error_page_404: str | None = ERROR_PAGE


@dataclass(frozen=True, slots=True)
class Rule:
    """A request rule applied before locations (nginx: a server-level `if` on a `map`).

    It fires when the site variable `gate` is "1" and `pattern` (case-insensitive, no
    backslashes: nginx config quoting) matches the request's `input`: `cookie` (the Cookie
    header) or `uri` (the request target as sent, query included, like nginx's
    $request_uri); at the start when `anchored`, anywhere otherwise.  It then aborts the
    connection without an answer (`abort`, nginx `return 444`: what IIS URL Rewrite's
    AbortRequest looks like from outside) or answers from its internal `location`.
    """

    id: str
    gate: str
    input: str
    pattern: str
    anchored: bool = False
    abort: bool = False
    location: Location | None = None

    @property
    def path(self) -> str:
        return f"/__lab/{self.id}"


_RUNTIME_ERROR = (
    "<html><head><title>Runtime Error</title></head><body bgcolor=white><span>"
    "<H1>Server Error in '/' Application.<hr width=100% size=1 color=silver></H1>"
    "<h2> <i>Runtime Error</i> </h2></span><b> Description: </b>An application error "
    "occurred on the server.</body></html>"
)
_MAPI_PAGE = (
    "<html><head><title>Exchange MAPI/HTTP Connectivity Endpoint</title></head><body>"
    "<p>Exchange MAPI/HTTP Connectivity Endpoint<br><br>Version: $lab_build<br>"
    "Vdir Path: /mapi/nspi/<br><br></p></body></html>"
)


def _rule(
    rid: str,
    gate: str,
    what: str,
    pattern: str,
    *,
    anchored: bool = False,
    abort: bool = False,
    answer: tuple[int, tuple[Header, ...], str] | None = None,
) -> Rule:
    if "\\" in pattern or '"' in pattern:
        raise ValueError(f"rule {rid}: no backslashes or double quotes (nginx quoting)")
    location = None
    if answer is not None:
        status, headers, text = answer
        location = Location("=", f"/__lab/{rid}", headers, status, text, internal=True)
    return Rule(rid, gate, what, pattern, anchored, abort, location)


# The check rules, in the order they are tried (the first that fires answers).  Gates:
# lab_m_* a mitigation in place, lab_v_* a vulnerable server behind a published path,
# lab_pub_owa OWA published, lab_c_* a compromise shape (lab/compromise.py).
RULES: tuple[Rule, ...] = (
    # EOMT's two URL Rewrite rules (X-AnonResource-Backend; X-BEResource=(.+)/(.+)~(.+)).
    _rule("eomt", "lab_m_eomt", "cookie", "X-AnonResource-Backend|X-BEResource=[^;]+/[^;]+~",
          abort=True),
    # EOMTv2 / Emergency Mitigation: autodiscover and powershell anywhere in the URI.
    _rule("proxynotshell-rewrite", "lab_m_pns", "uri", "(?=.*autodiscover)(?=.*powershell)",
          abort=True),
    # A front end without the March 2021 fix routes by the cookie: to localhost here.
    _rule("proxylogon-vulnerable", "lab_v_pl", "cookie", "X-BEResource=localhost",
          answer=(500, (*EXCHANGE_HEADERS, ("X-CalculatedBETarget", "localhost")),
                  "NegotiateSecurityContext failed with for host 'localhost' with status "
                  "'TargetUnknown'")),
    # A fixed front end proxies the anonymous resource to its real back end.
    _rule("proxylogon-fixed", "lab_pub_owa", "cookie", "X-AnonResource=true",
          answer=(404, (*EXCHANGE_HEADERS, ("X-CalculatedBETarget", "$lab_be_fqdn")), _404)),
    # The ProxyShell path confusion reaches the back end's MAPI status page.
    _rule("proxyshell-vulnerable", "lab_v_ps", "uri",
          "/autodiscover/autodiscover[.]json[?]@[^/]*/mapi/nspi",
          answer=(200, EXCHANGE_HEADERS, _MAPI_PAGE)),
    # Every .aspx under /aspnet_client/ fails (a broken ASP.NET, not a shell).
    _rule("lookalike-errors", "lab_c_errors", "uri", "/aspnet_client/[^?]*[.]aspx",
          anchored=True, answer=(500, _POWERED, _RUNTIME_ERROR)),
    # A shell that fails to run at lab/compromise.py's ERROR_SHELL_PATH.
    _rule("shell-error", "lab_c_shellerr", "uri", "/aspnet_client/errorcheck[.]aspx",
          anchored=True, answer=(500, _POWERED, _RUNTIME_ERROR)),
)  # fmt: skip
GATES = tuple(dict.fromkeys(r.gate for r in RULES))


@dataclass(frozen=True, slots=True)
class Site:
    """One web-facing host: where it listens, what it shows, which variables it sets."""

    ip: str
    cert: str
    server: str  # the Server header; "" leaves the server's own
    layout: str
    variants: tuple[dict[str, str], ...] = field(default_factory=tuple)
    tls_versions: tuple[str, ...] = (TLS12, TLS13)  # what it offers, see plan.tls_versions


def _say(match: str, pattern: str, status: int, extra: tuple[Header, ...] = ()) -> Location:
    """A location answering like the proxy, with the lab's headers."""
    return Location(match, pattern, EXCHANGE_HEADERS + extra, status, _TEXT.get(status, ""))


def _blocked(match: str, pattern: str, status: str) -> Location:
    """A location a firewall or proxy closed: a bare 403 or 404, no Exchange headers."""
    return Location(match, pattern, status=int(status), text=_TEXT[int(status)])


def _error_page(common: Path, page: str = ERROR_PAGE) -> Location:
    return Location("=", page, internal=True, root=str(common))


def exchange_layout(
    page: str, ecp: str, ews: str, common: Path, *, catch_all: bool = False
) -> Layout:
    """Locations of an Exchange host with this exposure; per-host values are variables.

    Each exposure gets its own layout instead of conditions: in nginx every `if` is
    another location config per server, and its memory per host grows with each.
    `catch_all`: a server (or a proxy in front) that answers the logon page, 200, for
    any path it lacks (only with a logon page).
    """
    blocked = ("403", "404")
    logon = _LOGON_REDIRECT.format(app="owa")
    eh = EXCHANGE_HEADERS
    missing = ("/owa/auth/logon.aspx", "=404") if catch_all else ("=404",)
    out = [
        _error_page(common),
        Location("=", "/", eh, status=302, text="https://$lab_host/owa/"),
        Location("", "/", eh, try_files=("$uri", *missing)) if catch_all else _say("", "/", 404),
        # IIS's own folder at the site root (the 2021 shells' favourite place): files only.
        Location("^~", "/aspnet_client/", _POWERED, try_files=("$uri", *missing)),
    ]
    if page == "none":
        out.append(_blocked("^~", "/owa", "404"))
    else:
        owa_hdr = (("X-OWA-Version", "$lab_owa_owa"),)
        out += [
            Location("=", "/owa", eh, status=301, text="https://$lab_host/owa/"),
            Location("=", "/owa/", eh + owa_hdr, status=302, text=logon),
            Location(
                "=",
                "/owa/auth/logon.aspx",
                (*eh, ("X-OWA-Version", "$lab_owa_logon"), ("Cache-Control", "no-cache, no-store")),
                try_files=("/owa/auth/logon.aspx", "=404"),
            ),
            _say("=", "/owa/service", 440, (("X-OWA-Version", "$lab_owa_service"),)),
            Location("^~", "/owa/auth/", eh, try_files=("$uri", *missing)),
            # 2007 and 2010 keep their static files under /owa/<four-part build>/
            Location("~*", "^/owa/[0-9.]+/(themes|scripts)/", eh, try_files=("$uri", "=404")),
            Location("", "/owa/", eh + owa_hdr, status=302, text=logon),
        ]
    ecp_match = "^/ecp(/|$)"
    if ecp in blocked:
        out.append(_blocked("~*", ecp_match, ecp))
    else:
        ecp_logon = _LOGON_REDIRECT.format(app="ecp")
        if ecp == "cu-folder":
            # /ecp/Current/ reached but empty; the tool lives under the CU's own folder.
            out += [
                _say("^~", "/ecp/Current/", 404),
                Location("~*", "^/ecp/[0-9.]+/exporttool/", eh, try_files=("$uri", "=404")),
            ]
        else:
            out.append(Location("^~", "/ecp/Current/exporttool/", eh, try_files=("$uri", "=404")))
        out.append(Location("~*", ecp_match, eh, status=302, text=ecp_logon))
    for match, var in ((_SERVICES, "$lab_owa_ews"), (_AUTODISCOVER, "$lab_owa_ad")):
        if ews in blocked:
            out.append(_blocked("~*", match, ews))
        else:
            extra = (("X-OWA-Version", var), *_AUTH_HEADERS)
            out.append(_say("~*", match, 401, extra))
    name = exchange_layout_name(page, ecp, ews) + ("-catchall" if catch_all else "")
    return Layout(name, tuple(out))


def _closed_nginx_layout() -> Layout:
    """nginx publishes Exchange's service endpoints only and hides every Exchange header
    (proxy_hide_header); everything else is nginx's own 404."""
    out = [
        Location("", "/", try_files=("$uri", "=404")),
        Location("~*", _SERVICES, _AUTH_HEADERS, status=401, text=_401),
        Location("~*", _AUTODISCOVER, _AUTH_HEADERS, status=401, text=_401),
    ]
    return Layout("exchange-closed-nginx", tuple(out), root="$lab_empty", error_page_404=None)


def _closed_apache_layout(common: Path) -> Layout:
    """Apache (mod_proxy) publishes the service endpoints and passes Exchange's headers,
    its Server header included; its own pages say Apache."""
    eh = EXCHANGE_HEADERS
    out = [
        _error_page(common, APACHE_ERROR_PAGE),
        Location("", "/", try_files=("$uri", "=404")),
    ]
    for match, var in ((_SERVICES, "$lab_owa_ews"), (_AUTODISCOVER, "$lab_owa_ad")):
        headers = (*eh, ("X-OWA-Version", var), *_AUTH_HEADERS)
        out.append(Location("~*", match, headers, 401, _401, server="$lab_iis"))
    return Layout(
        "exchange-closed-apache", tuple(out), root="$lab_empty", error_page_404=APACHE_ERROR_PAGE
    )


def _fba_off_layout(common: Path) -> Layout:
    """Exchange 2010 with forms-based authentication off: IIS asks for Windows
    authentication on OWA and ECP too; no Exchange header comes before it."""
    auth = (("X-Powered-By", "ASP.NET"), *_AUTH_HEADERS)
    out = [
        _error_page(common),
        Location("", "/", try_files=("$uri", "=404")),
        Location("^~", "/owa", auth, status=401, text=_401),
        Location("~*", "^/ecp(/|$)", auth, status=401, text=_401),
        Location("~*", _SERVICES, auth, status=401, text=_401),
        Location("~*", _AUTODISCOVER, auth, status=401, text=_401),
    ]
    return Layout("exchange-fba-off", tuple(out), root="$lab_empty")


def _exchange_2003_layout(common: Path) -> Layout:
    """Exchange 2003 on IIS 6.0: /exchange/ sends browsers to the OWA logon page."""
    logon = (
        "https://$lab_host/exchweb/bin/auth/owalogon.asp?url=https://$lab_host/exchange/&reason=0"
    )
    powered = (("X-Powered-By", "ASP.NET"),)
    out = [
        _error_page(common),
        Location("", "/", powered, try_files=("$uri", "=404")),
        Location("=", "/exchange", powered, status=301, text="https://$lab_host/exchange/"),
        Location("^~", "/exchange/", powered, status=302, text=logon),
        Location("=", "/exchweb/bin/auth/owalogon.asp", powered, try_files=("$uri", "=404")),
    ]
    return Layout("exchange-2003", tuple(out))


def _online_layout(common: Path) -> Layout:
    """An Exchange Online front end: everything goes to Microsoft's sign-in, the service
    endpoints ask for a bearer token, and every answer carries the front-end headers."""
    oh = ONLINE_HEADERS
    signin = (
        "https://login.microsoftonline.com/common/oauth2/authorize?"
        "client_id=00000002-0000-0ff1-ce00-000000000000&"
        "redirect_uri=https%3a%2f%2foutlook.office365.com%2fowa%2f"
    )
    out = [
        _error_page(common),
        Location("", "/", oh, status=404, text=_404),
        Location("=", "/", oh, status=302, text="https://outlook.office365.com/owa/"),
        Location("^~", "/owa", oh, status=302, text=signin),
        Location("~*", "^/ecp(/|$)", oh, status=302, text=signin),
        Location("~*", _SERVICES, oh + _ONLINE_AUTH, status=401, text=_401),
        Location("~*", _AUTODISCOVER, oh + _ONLINE_AUTH, status=401, text=_401),
    ]
    return Layout("exchange-online", tuple(out))


def _honeypot_flask_layout() -> Layout:
    """joda32/owa-honeypot's shape: a few Flask routes behind an IIS 7.5 Server header,
    Basic authentication on Exchange's folders, Werkzeug's 500 everywhere else."""
    powered = (("X-Powered-By", "ASP.NET"),)
    to_logon = "https://$lab_host/owa/auth/logon.aspx?replaceCurrent=1&url="
    folders = (
        "^/(abs|autodiscover|ecp|ews|exchweb|microsoft-server-activesync|oab|powershell|rpc)/$"
    )
    basic = (*powered, ("WWW-Authenticate", 'Basic realm="Login Required"'))
    out = [
        Location("", "/", (), 500, pages.FLASK_500, server="Werkzeug/2.0.3 Python/3.9.2"),
        Location("=", "/", powered, status=302, text=to_logon),
        Location("=", "/exchange", powered, status=302, text=to_logon),
        Location("=", "/exchange/", powered, status=302, text=to_logon),
        Location("=", "/owa/auth/logon.aspx", powered, try_files=("$uri", "=404")),
        Location("=", "/owa/auth.owa", powered, status=302, text=to_logon),
        Location(
            "=",
            "/owa/auth/15.1.1466/themes/resources/favicon.ico",
            powered,
            try_files=("$uri", "=404"),
        ),
        Location("~*", folders, basic, status=401, text=pages.HONEYPOT_401),
    ]
    return Layout("honeypot-flask", tuple(out), error_page_404=None)


def _honeypot_catchall_layout() -> Layout:
    """A copied logon page for every path."""
    out = [Location("", "/", try_files=("/owa/auth/logon.aspx", "=404"))]
    return Layout("honeypot-catchall", tuple(out), error_page_404=None)


def _impostor_layout() -> Layout:
    """A phishing kit behind nginx: fake Microsoft headers on every answer, its page for
    most paths, nginx's 404 for script extensions."""
    ih = IMPOSTOR_HEADERS
    out = [
        Location("", "/", ih, try_files=("/index.html", "=404")),
        Location("~*", "\\.(asp|aspx|php|jsp|cgi)$", ih, status=404, builtin=True),
    ]
    return Layout("impostor-online-headers", tuple(out), error_page_404=None)


def web_layout(common: Path) -> Layout:
    """The non-Exchange web servers: a document root with an index page."""
    return Layout(
        "web",
        (
            _error_page(common),
            Location("", "/", try_files=("$uri", "$uri/", "=404")),
        ),
        index="index.html",
    )


def _sharepoint_layout() -> Layout:
    """SharePoint behind Windows authentication: every path asks for it."""
    sp = (
        ("SPRequestGuid", "1e2d3c4b-5a69-4788-9aab-bccddeeff001"),
        ("MicrosoftSharePointTeamServices", "16.0.0.10337"),
        ("X-Powered-By", "ASP.NET"),
        *_AUTH_HEADERS,
    )
    return Layout(
        "web-sharepoint", (Location("", "/", sp, status=401, text=_401),), error_page_404=None
    )


def _mail_protocols_layout(common: Path) -> Layout:
    """Another mail server (Zimbra, Kerio Connect) speaking Autodiscover, EWS and ActiveSync
    with Basic authentication only."""
    basic = (("WWW-Authenticate", 'Basic realm="$lab_realm"'),)
    out = [
        _error_page(common),
        Location("", "/", try_files=("$uri", "$uri/", "=404")),
        Location("~*", "^/(autodiscover|ews|microsoft-server-activesync)(/|$)", basic, 401, _401),
    ]
    return Layout("web-mail-protocols", tuple(out), index="index.html")


def _skype_layout(common: Path) -> Layout:
    """A Lync/Skype for Business front end: its own autodiscover service and web services
    behind Windows authentication, nothing of Exchange's."""
    services = "^/(webticket|ucwa|reach|meet|dialin|abs|certprov|groupexpansion|rgsclients)(/|$)"
    fqdn = (("X-MS-Server-Fqdn", "$lab_fqdn"), ("X-Powered-By", "ASP.NET"))
    out = [
        _error_page(common),
        Location("", "/", fqdn, try_files=("$uri", "=404")),
        Location("~*", services, (*fqdn, *_AUTH_HEADERS), 401, _401),
    ]
    return Layout("web-skype", tuple(out))


def _portal_layout(name: str, page_match: str, page: str, target: str, cookies: str) -> Layout:
    """A pre-authentication portal: every path redirects to its own logon page."""
    set_cookie = (("Set-Cookie", cookies),) if cookies else ()
    out = [
        Location(page_match, page, try_files=("$uri", "=404")),
        Location("", "/", set_cookie, status=302, text=f"https://$lab_host{target}"),
    ]
    return Layout(name, tuple(out), error_page_404=None)


WEB_LAYOUTS = {
    "iis-default": "web",
    "nginx-default": "web",
    "apache-default": "web",
    "webmail": "web",
    "sophos-portal": "web",
    "sharepoint": "web-sharepoint",
    "zimbra": "web-mail-protocols",
    "kerio": "web-mail-protocols",
    "skype-frontend": "web-skype",
    "f5-apm": "web-f5",
    "citrix-gateway": "web-citrix",
    "forefront-tmg": "web-tmg",
    "forefront-uag": "web-uag",
}


def exchange_layout_name(page: str, ecp: str, ews: str) -> str:
    return f"exchange-{page}-{ecp}-{ews}"


def all_layouts(common: Path) -> dict[str, Layout]:
    """Every layout a lab can use, by name."""
    special = [
        web_layout(common),
        _sharepoint_layout(),
        _mail_protocols_layout(common),
        _skype_layout(common),
        _portal_layout(
            "web-f5",
            "=",
            "/my.policy",
            "/my.policy",
            "LastMRH_Session=0a1b2c3d;path=/;secure",
        ),
        _portal_layout(
            "web-citrix",
            "^~",
            "/logon/LogonPoint/",
            "/logon/LogonPoint/index.html",
            "NSC_TEMP=xyz;Path=/;expires=Wednesday, 09-Nov-1999 23:12:40 GMT",
        ),
        _portal_layout(
            "web-tmg",
            "=",
            "/CookieAuth.dll",
            "/CookieAuth.dll?GetLogon?curl=Z2F&reason=0&formdir=3",
            "",
        ),
        _portal_layout(
            "web-uag",
            "^~",
            "/InternalSite/",
            "/InternalSite/Validate.asp?site_name=portal&secure=1",
            "",
        ),
        _closed_nginx_layout(),
        _closed_apache_layout(common),
        _fba_off_layout(common),
        _exchange_2003_layout(common),
        _online_layout(common),
        _honeypot_flask_layout(),
        _honeypot_catchall_layout(),
        _impostor_layout(),
    ]
    out = {layout.name: layout for layout in special}
    for page, ecp, ews in itertools.product(PAGES, ECP_STATES, EWS_STATES):
        layout = exchange_layout(page, ecp, ews, common)
        out[layout.name] = layout
    catch_all = exchange_layout("stock", "open", "401", common, catch_all=True)
    out[catch_all.name] = catch_all
    # Every layout answers the check rules' internal locations (see RULES).
    lab = tuple(r.location for r in RULES if r.location is not None)
    return {
        name: Layout(
            layout.name, layout.locations + lab, layout.root, layout.index, layout.error_page_404
        )
        for name, layout in out.items()
    }


# -- document roots -------------------------------------------------------------------

TOOL = "exporttool/microsoft.exchange.ediscovery.exporttool.application"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _root_name(host: Host, backend: Backend) -> str:
    if host.kind == "suspect":
        return f"s-{host.profile}-{backend.build.full}"
    if host.compromise in compromise.PLANTED:
        # Planted files make the root this host's own.
        return f"x-{host.page}-{host.ecp}-{backend.build.full}-{host.compromise}-{host.org}"
    if host.page == "custom":
        return f"x-custom-{host.org}-{backend.build.full}"
    return f"x-{host.page}-{host.ecp}-{backend.build.full}"


def write_common(www: Path) -> Path:
    """The shared error pages and an empty root; returns the common directory."""
    common = www / "common"
    _write(common / ERROR_PAGE.lstrip("/"), pages.ERROR_404)
    _write(common / APACHE_ERROR_PAGE.lstrip("/"), pages.APACHE_404)
    (www / "empty").mkdir(parents=True, exist_ok=True)
    return common


def write_exchange_root(
    www: Path, host: Host, backend: Backend, releases: dict[tuple[int, int, int], LabBuild]
) -> Path:
    root = www / _root_name(host, backend)
    if root.exists():
        return root
    build: LabBuild = backend.build
    modern = build.line not in {"2003", "2007", "2010"}
    if host.page == "stock" or host.kind == "suspect":
        _write(root / "owa/auth/logon.aspx", pages.owa_logon(build))
        _write(root / pages.favicon_path(build), pages.FAVICON)
    elif host.page == "custom":
        _write(root / "owa/auth/logon.aspx", pages.owa_logon_custom(host.org))
        _write(root / pages.favicon_path(build), pages.FAVICON)
    if modern and host.page != "none":
        _write(root / "owa/auth/errorFE.aspx", pages.error_fe(build))
    if host.kind == "suspect":
        _write(root / "index.html", pages.owa_logon(build))  # the kit's page at its root
    if build.line == "2003":
        _write(root / "exchweb/bin/auth/owalogon.asp", pages.LOGON_2003)
    if modern and host.ecp == "cu-folder":
        folder = releases[build.parts[:3]].full
        _write(root / "ecp" / folder / TOOL, pages.exporttool_manifest(build))
    elif modern:
        _write(root / "ecp/Current" / TOOL, pages.exporttool_manifest(build))
    for path, body in compromise.planted_files(host, backend).items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
    root.mkdir(parents=True, exist_ok=True)
    return root


_WEB_PAGES = {
    "iis-default": ("index.html", pages.IIS_DEFAULT),
    "nginx-default": ("index.html", pages.NGINX_DEFAULT),
    "apache-default": ("index.html", pages.APACHE_DEFAULT),
    "sophos-portal": ("index.html", pages.SOPHOS),
    "zimbra": ("index.html", pages.ZIMBRA),
    "kerio": ("index.html", pages.KERIO),
    "skype-frontend": ("autodiscover/autodiscoverservice.svc/root", pages.SKYPE_ROOT),
    "f5-apm": ("my.policy", pages.F5_POLICY),
    "citrix-gateway": ("logon/LogonPoint/index.html", pages.CITRIX),
    "forefront-tmg": ("CookieAuth.dll", pages.TMG),
    "forefront-uag": ("InternalSite/Validate.asp", pages.UAG),
}


def write_web_root(www: Path, host: Host) -> Path:
    # Only the webmail names its organisation; default pages are shared by flavour.
    root = www / (f"w-webmail-{host.org}" if host.profile == "webmail" else f"w-{host.profile}")
    if root.exists():
        return root
    if host.profile == "webmail":
        _write(root / "index.html", pages.webmail(host.org))
    elif host.profile in _WEB_PAGES:
        name, body = _WEB_PAGES[host.profile]
        _write(root / name, body)
    root.mkdir(parents=True, exist_ok=True)
    return root


# -- per-host variables ---------------------------------------------------------------


def _backend_vars(host: Host, backend: Backend, root: Path) -> dict[str, str]:
    b = backend.build
    who = backend.ntlm
    owa = {
        e: (b.full if e in host.owa_header_on else "")
        for e in (OWA, LOGON, SERVICE, EWS, AUTODISCOVER)
    }
    seed_bytes = f"{host.ip}/{who.netbios_computer}".encode()
    challenge = (
        int.from_bytes(seed_bytes[-8:].rjust(8, b"\0"), "big") ^ 0x5A5A5A5A5A5A5A5A
    ).to_bytes(8, "big")
    return {
        "lab_root": str(root),
        "lab_fe": who.netbios_computer if host.feserver else "",
        "lab_ntlm": challenge_header(who, challenge, _FILETIME_2026),
        "lab_owa_owa": owa[OWA],
        "lab_owa_logon": owa[LOGON],
        "lab_owa_service": owa[SERVICE],
        "lab_owa_ews": owa[EWS],
        "lab_owa_ad": owa[AUTODISCOVER],
        "lab_iis": IIS_BY_OS.get(who.os_version[:2], "Microsoft-IIS/10.0"),
        **compromise.gates(host, backend),
        "lab_be_fqdn": who.dns_computer,
        "lab_build": b.full,
    }


def _online_vars(host: Host, www: Path) -> dict[str, str]:
    who = host.backends[0].ntlm
    be = f"GV1P191MB{sum(map(ord, host.ip)) % 10000:04d}"
    return {
        "lab_root": str(www / "empty"),
        "lab_fe": who.netbios_computer,
        "lab_be": be,
        "lab_be_target": f"{be}.EURP191.PROD.OUTLOOK.COM",
        "lab_fe_proxy": f"{who.netbios_computer}.EURPRD01.PROD.OUTLOOK.COM",
        "lab_efz": "AMS",
        "lab_owa_owa": host.backends[0].build.full,
    }


def _web_vars(host: Host, www: Path) -> dict[str, str]:
    return {
        "lab_root": str(write_web_root(www, host)),
        "lab_realm": "Kerio Connect" if host.profile == "kerio" else "Zimbra",
        "lab_fqdn": f"lyncfe01.{host.org}.local",
    }


def site(host: Host, workdir: Path, releases: dict[tuple[int, int, int], LabBuild]) -> Site:
    """The route-table entry of one web-facing host; writes its document root."""
    www = workdir / "www"
    cert = str(workdir / "certs" / f"{host.ip}.pem")
    versions = tls_versions(host)
    if host.kind == "web":
        layout = WEB_LAYOUTS[host.profile or "nginx-default"]
        return Site(host.ip, cert, host.server_header, layout, (_web_vars(host, www),), versions)
    if host.kind == "online":
        online = (_online_vars(host, www),)
        return Site(host.ip, cert, host.server_header, "exchange-online", online, versions)
    stripped = host.profile in {"proxy-stripped", "closed-owa-nginx"}
    aspnet = "2.0.50727" if host.backends[0].build.line == "2010" else "4.0.30319"
    shared = {
        "lab_powered": "" if stripped else "ASP.NET",
        "lab_aspnet": "" if stripped else aspnet,
        "lab_empty": str(www / "empty"),
    }
    variants = tuple(
        {**_backend_vars(host, b, write_exchange_root(www, host, b, releases)), **shared}
        for b in host.backends
    )
    layout = host.layout or exchange_layout_name(host.page, host.ecp, host.ews)
    return Site(host.ip, cert, host.server_header, layout, variants, versions)


def build_sites(plan: Plan, workdir: Path) -> list[Site]:
    """The route table of every host nginx or the Python backend serves; writes the roots."""
    write_common(workdir / "www")
    releases = load_cu_releases()
    return [site(h, workdir, releases) for h in plan.hosts if h.serves_tls_by_nginx]


# -- round robin: which server of a balanced address answers a request ------------------


def variant_for_request(nth: int, variants: int) -> int:
    """The variable set (server) that answers the `nth` request (1-based) of a connection
    to an address with `variants` servers: the next one each time."""
    if variants <= 1 or nth < 1:
        return 0
    if variants == 2:
        return (nth - 1) % 2  # odd requests the first server, even the second (any nth)
    return (nth - 1) % variants if nth <= RR_REQUESTS else 0


__all__ = [
    "APACHE_ERROR_PAGE",
    "ERROR_PAGE",
    "Layout",
    "Location",
    "Site",
    "all_layouts",
    "build_sites",
    "variant_for_request",
]
