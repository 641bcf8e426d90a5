"""The lab's route table: what every web-facing host answers, as data both backends read.

A `Layout` is the shared behaviour of one kind of host (nginx renders it as one include
file of `location` blocks); a `Site` is one host: its address, certificate, Server header,
TLS versions, layout and the per-host variables the layout refers to as `$name` (nginx
`set`s them, the Python backend substitutes them).  A load-balanced host has two variable
sets and picks one per connection.  Keeping this knowledge in one place is what makes the
nginx and the Python backend answer alike.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from exwatch.lab import pages
from exwatch.lab.builds import LabBuild
from exwatch.lab.ntlm import challenge_header
from exwatch.lab.plan import (
    AUTODISCOVER,
    EWS,
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
ECP_STATES = ("open", "403", "404")
EWS_STATES = ("401", "403", "404")
ERROR_PAGE = "/lab-404.html"
KEEPALIVE_SECONDS = 10

# Served content types by file extension; anything else gets DEFAULT_TYPE.
MIME_TYPES = {
    "html": "text/html",
    "htm": "text/html",
    "aspx": "text/html",
    "css": "text/css",
    "ico": "image/x-icon",
    "application": "application/x-ms-application",
    "xml": "text/xml",
}
DEFAULT_TYPE = "text/html; charset=utf-8"

# Which challenge to send depends on what the client offered: a type-1 in
# `Authorization: NTLM ...` (or `Negotiate` wrapping raw NTLM) gets this host's type-2.
# Patterns are matched case-insensitively against the Authorization header.
AUTH_KINDS = ((r"^NTLM\s+TlRMTVNTUAAB", "ntlm"), (r"^Negotiate\s+TlRMTVNTUAAB", "nego"))
AUTH_FIRST = {"ntlm": "NTLM $lab_ntlm", "nego": "Negotiate $lab_ntlm", "none": "Negotiate"}
AUTH_SECOND = {"ntlm": "", "nego": "", "none": "NTLM"}

_401 = "<html><head><title>401 - Unauthorized</title></head><body><h2>401 - Unauthorized: Access is denied due to invalid credentials.</h2></body></html>"  # noqa: E501
_403 = "<html><head><title>403 - Forbidden</title></head><body><h2>403 - Forbidden: Access is denied.</h2></body></html>"  # noqa: E501
_404 = "<html><head><title>404 - File or directory not found.</title></head><body><h2>404 - File or directory not found.</h2></body></html>"  # noqa: E501
_TEXT = {401: _401, 403: _403, 404: _404}

Header = tuple[str, str]  # (name, value template); an empty expanded value sends nothing

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


@dataclass(frozen=True, slots=True)
class Location:
    """One nginx `location`: how it matches, which headers it adds, what it answers.

    `match` is "=" (exact), "^~" (prefix that skips the regexes), "" (prefix) or "~*"
    (case-insensitive regex).  A location either returns `status` with `text` (the body,
    or the target URL of a 301/302) or serves the first existing `try_files` candidate,
    the last one being "=404".
    """

    match: str
    pattern: str
    headers: tuple[Header, ...] = ()
    status: int | None = None
    text: str = ""
    try_files: tuple[str, ...] = ()
    internal: bool = False
    root: str | None = None


@dataclass(frozen=True, slots=True)
class Layout:
    """The behaviour shared by hosts of one kind: server-level settings and locations."""

    name: str
    locations: tuple[Location, ...]
    root: str = "$lab_root"
    index: str | None = None
    error_page_404: str | None = ERROR_PAGE


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


def exchange_layout(page: str, ecp: str, ews: str, common: Path) -> Layout:
    """Locations of an Exchange host with this exposure; per-host values are variables.

    Each exposure gets its own layout instead of conditions: in nginx every `if` is
    another location config per server, and its memory per host grows with each.
    """
    blocked = ("403", "404")
    logon = _LOGON_REDIRECT.format(app="owa")
    eh = EXCHANGE_HEADERS
    out = [
        Location("=", ERROR_PAGE, internal=True, root=str(common)),
        Location("=", "/", eh, status=302, text="https://$lab_host/owa/"),
        _say("", "/", 404),
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
            Location("^~", "/owa/auth/", eh, try_files=("$uri", "=404")),
            Location("^~", "/owa/", eh + owa_hdr, status=302, text=logon),
        ]
    ecp_match = "^/ecp(/|$)"
    if ecp in blocked:
        out.append(_blocked("~*", ecp_match, ecp))
    else:
        ecp_logon = _LOGON_REDIRECT.format(app="ecp")
        out += [
            Location("^~", "/ecp/Current/exporttool/", eh, try_files=("$uri", "=404")),
            Location("~*", ecp_match, eh, status=302, text=ecp_logon),
        ]
    for match, var in (
        ("^/(ews|rpc|mapi|oab|microsoft-server-activesync|powershell)(/|$)", "$lab_owa_ews"),
        ("^/autodiscover(/|$)", "$lab_owa_ad"),
    ):
        if ews in blocked:
            out.append(_blocked("~*", match, ews))
        else:
            extra = (("X-OWA-Version", var), *_AUTH_HEADERS)
            out.append(_say("~*", match, 401, extra))
    return Layout(exchange_layout_name(page, ecp, ews), tuple(out))


def web_layout(common: Path) -> Layout:
    """The non-Exchange web servers: a document root with an index page."""
    return Layout(
        "web",
        (
            Location("=", ERROR_PAGE, internal=True, root=str(common)),
            Location("", "/", try_files=("$uri", "$uri/", "=404")),
        ),
        index="index.html",
    )


def exchange_layout_name(page: str, ecp: str, ews: str) -> str:
    return f"exchange-{page}-{ecp}-{ews}"


def all_layouts(common: Path) -> dict[str, Layout]:
    """Every layout a lab can use, by name."""
    out = {"web": web_layout(common)}
    for page, ecp, ews in itertools.product(PAGES, ECP_STATES, EWS_STATES):
        layout = exchange_layout(page, ecp, ews, common)
        out[layout.name] = layout
    return out


# -- document roots -------------------------------------------------------------------


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _root_name(host: Host, backend: Backend) -> str:
    if host.page == "custom":
        return f"x-custom-{host.org}-{backend.build.full}"
    return f"x-{host.page}-{backend.build.full}"


def write_common(www: Path) -> Path:
    """The shared error page; returns its directory."""
    common = www / "common"
    _write(common / ERROR_PAGE.lstrip("/"), pages.ERROR_404)
    return common


def write_exchange_root(www: Path, host: Host, backend: Backend) -> Path:
    root = www / _root_name(host, backend)
    if root.exists():
        return root
    build: LabBuild = backend.build
    if host.page == "stock":
        _write(root / "owa/auth/logon.aspx", pages.owa_logon(build))
    elif host.page == "custom":
        _write(root / "owa/auth/logon.aspx", pages.owa_logon_custom(host.org))
    if build.line != "2010":
        _write(
            root / "ecp/Current/exporttool/microsoft.exchange.ediscovery.exporttool.application",
            pages.exporttool_manifest(build),
        )
    root.mkdir(parents=True, exist_ok=True)
    return root


def write_web_root(www: Path, host: Host) -> Path:
    # Only the webmail names its organisation; default pages are shared by flavour.
    root = www / (f"w-webmail-{host.org}" if host.profile == "webmail" else f"w-{host.profile}")
    if root.exists():
        return root
    body = {
        "iis-default": pages.IIS_DEFAULT,
        "nginx-default": pages.NGINX_DEFAULT,
        "apache-default": pages.APACHE_DEFAULT,
        "webmail": pages.webmail(host.org),
    }[host.profile or "nginx-default"]
    _write(root / "index.html", body)
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
    }


def site(host: Host, workdir: Path) -> Site:
    """The route-table entry of one web-facing host; writes its document root."""
    www = workdir / "www"
    cert = str(workdir / "certs" / f"{host.ip}.pem")
    if host.kind == "web":
        return Site(
            host.ip,
            cert,
            host.server_header,
            "web",
            ({"lab_root": str(write_web_root(www, host))},),
            tls_versions(host),
        )
    stripped = host.profile == "proxy-stripped"
    aspnet = "2.0.50727" if host.backends[0].build.line == "2010" else "4.0.30319"
    shared = {
        "lab_powered": "" if stripped else "ASP.NET",
        "lab_aspnet": "" if stripped else aspnet,
    }
    variants = tuple(
        {**_backend_vars(host, b, write_exchange_root(www, host, b)), **shared}
        for b in host.backends
    )
    layout = exchange_layout_name(host.page, host.ecp, host.ews)
    return Site(host.ip, cert, host.server_header, layout, variants, tls_versions(host))


def build_sites(plan: Plan, workdir: Path) -> list[Site]:
    """The route table of every host nginx or the Python backend serves; writes the roots."""
    write_common(workdir / "www")
    return [site(h, workdir) for h in plan.hosts if h.serves_tls_by_nginx]


# -- split_clients: which backend a load-balanced connection reaches --------------------


def murmur_hash2(data: bytes) -> int:
    """nginx's ngx_murmur_hash2 (seed 0): what `split_clients` hashes the key with."""
    m = 0x5BD1E995
    mask = 0xFFFFFFFF
    h = len(data) & mask
    n = len(data) // 4 * 4
    for i in range(0, n, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    tail = data[n:]
    if tail:
        if len(tail) >= 3:
            h ^= tail[2] << 16
        if len(tail) >= 2:
            h ^= tail[1] << 8
        h ^= tail[0]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h


SPLIT_PERCENT = 50  # the first variant's share of connections
_SPLIT_BELOW = 0xFFFFFFFF * SPLIT_PERCENT * 100 // 10000


def variant_for_port(remote_port: int) -> int:
    """0 or 1: the variable set a connection from this source port gets (as nginx picks)."""
    return 0 if murmur_hash2(str(remote_port).encode()) < _SPLIT_BELOW else 1
