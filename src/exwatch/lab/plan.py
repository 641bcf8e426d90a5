"""The lab's host plan: who lives at which address, how each host shows itself, and the
ground truth a perfect scanner should report for it.

Pure and deterministic: the same (hosts, seed, base, port) always gives the same plan.
"Perfect scanner" means one that uses the passive techniques of the fingerprinting
reference and of docs/fingerprinting.md (X-OWA-Version wherever it is sent; OWA resource
paths on the logon page and errorFE.aspx; the export-tool manifest under /ecp/Current/ or
the CU's own folder; X-FEServer; the NTLM challenge; Windows authentication on Exchange's
paths next to an ordinary 404; Exchange 2003's logon page; Exchange Online's front-end
headers; every server behind a balancer), but no folder brute force, and that tells
honeypots and impostors from Exchange by the plausibility rules.

Kinds: `exchange` (on-prem, what a census counts), `online` (Exchange Online front
ends), `suspect` (honeypots and impostors), `web` (other web servers and portals, the
negatives), `closed`, `silent` and `hostile-<behaviour>`.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, field
from typing import Any

from exwatch.lab import compromise
from exwatch.lab.builds import (
    PRODUCT_NAMES,
    LabBuild,
    load_builds,
    load_cu_releases,
    parse_build,
)
from exwatch.lab.ntlm import NtlmIdentity

GROUND_TRUTH_VERSION = 3  # 3: `checks` (what the opt-in checks report) per Exchange host
DEFAULT_BASE = "127.16.0.1"

# Endpoints that can carry X-OWA-Version.
OWA, LOGON, SERVICE, EWS, AUTODISCOVER = "owa", "logon", "service", "ews", "autodiscover"

# Exchange exposure profiles with their weight in the default mix.
EXCHANGE_PROFILES: dict[str, float] = {
    "full": 0.24,  # header on every endpoint, stock page, manifest, X-FEServer, NTLM
    "service-header": 0.12,  # header only on /owa/service (and autodiscover on newer builds)
    "manifest-only": 0.08,  # no header anywhere, ECP published
    "page-only": 0.12,  # no header, ECP blocked: 3-part from the page (4-part on 2010)
    "proxy-stripped": 0.09,  # reverse proxy drops X-OWA-Version and X-FEServer, ECP 404
    "custom-logon": 0.05,  # branded logon page, no headers: the CU comes from errorFE.aspx
    "load-balancer": 0.04,  # two servers behind one address, the next one per request
    "load-balancer-3": 0.03,  # three servers, page only (X-FEServer names each)
    "ews-only": 0.04,  # OWA not published; header on the autodiscover 401 only
    "ecp-cu-path": 0.03,  # export tool only under /ecp/<first build of the CU>/
    "closed-owa-nginx": 0.04,  # nginx publishes EWS/Autodiscover/ActiveSync, strips headers
    "closed-owa-apache": 0.04,  # Apache publishes the same, passes Exchange's headers
    "fba-off": 0.03,  # Exchange 2010, forms-based authentication off: /owa/ asks Windows auth
    "legacy-2003": 0.02,  # Exchange 2003: /exchweb/bin/auth/owalogon.asp on IIS 6.0
    "legacy-2007": 0.03,  # Exchange 2007: /owa/8.x.y.z/ paths, X-OWA-Version, no X-FEServer
}
PROFILES_2010 = ("full", "page-only", "proxy-stripped", "custom-logon", "fba-off")
# Profiles that exist for one product line only.
PROFILE_LINES = {"fba-off": "2010", "legacy-2003": "2003", "legacy-2007": "2007"}
LINE_WEIGHTS = {"2010": 0.10, "2013": 0.20, "2016": 0.30, "2019": 0.30, "SE": 0.10}
LOAD_BALANCED = {"load-balancer": 2, "load-balancer-3": 3}

# Honeypots and impostors, with the plausibility checks a scanner must see fail on each.
SUSPECT_PROFILES: dict[str, frozenset[str]] = {
    # joda32/owa-honeypot's shape: Flask behind an IIS 7.5 header, a 2016 CU9 page
    "honeypot-flask": frozenset({"iis-version", "foreign-server"}),
    # a copied 2019 page served for every path, plausible headers otherwise
    "honeypot-catchall": frozenset({"catch-all", "resource-is-page"}),
    # a phishing kit's Exchange Online headers (15.20 build) on a non-Microsoft host
    "impostor-online-headers": frozenset({"online-build"}),
}
HONEYPOT_FLASK_BUILD = "15.1.1466.3"  # the CU9 paths joda32/owa-honeypot's page uses
HONEYPOT_CATCHALL_BUILD = "15.2.1118.7"

WEB_PROFILES = (
    "iis-default",
    "nginx-default",
    "apache-default",
    "webmail",
    "sharepoint",
    "zimbra",
    "kerio",
    "skype-frontend",
    "f5-apm",
    "citrix-gateway",
    "sophos-portal",
    "forefront-tmg",
    "forefront-uag",
)
WEB_SERVER_HEADER = {
    "iis-default": "Microsoft-IIS/10.0",
    "nginx-default": "nginx/1.22.1",
    "apache-default": "Apache/2.4.62 (Debian)",
    "webmail": "Apache",
    "sharepoint": "Microsoft-IIS/10.0",
    "zimbra": "nginx",
    "kerio": "Kerio Connect 9.4.1",
    "skype-frontend": "Microsoft-IIS/8.5",
    "f5-apm": "BigIP",
    "citrix-gateway": "",
    "sophos-portal": "",
    "forefront-tmg": "",
    "forefront-uag": "Microsoft-IIS/7.5",
}

# Hostile behaviours served by the asyncio server, with the status a scanner should record.
HOSTILE_STATUS = {
    "slow-drip": "io-timeout",  # TLS ok, then one byte per second, never finishing
    "endless-headers": "protocol-error",  # status line, then header lines without end
    "garbage": "protocol-error",  # TLS ok, then random bytes instead of HTTP
    "early-close": "connection-closed",  # TLS ok, request read, closed without a reply
    "broken-tls": "tls-error",  # answers the ClientHello with something that is not TLS
    "reset": "connection-reset",  # accepts the connection, then resets it (RST)
}
# Hostile behaviours that finish the TLS handshake before misbehaving (hostile.TLS_BEHAVIOURS).
HOSTILE_TLS = frozenset({"slow-drip", "endless-headers", "garbage", "early-close"})
KIND_SHARE = {
    "exchange": 0.56,
    "online": 0.02,
    "suspect": 0.02,
    "web": 0.15,
    "closed": 0.15,
    "silent": 0.05,
    "hostile": 0.05,
}

# TLS versions by the names nginx's ssl_protocols and ssl.SSLSocket.version() use.
TLS12, TLS13 = "TLSv1.2", "TLSv1.3"
SCHANNEL_TLS13 = (10, 0, 20348)  # Windows Server 2022: the first Schannel with TLS 1.3

OS_BY_LINE: dict[str, tuple[tuple[int, int, int], ...]] = {
    "2003": ((5, 2, 3790),),  # Windows Server 2003
    "2007": ((6, 0, 6002), (6, 1, 7601)),  # 2008 SP2, 2008 R2 SP1
    "2010": ((6, 1, 7601),),  # Windows Server 2008 R2 SP1
    "2013": ((6, 3, 9600), (6, 2, 9200)),  # 2012 R2, 2012
    "2016": ((10, 0, 14393), (6, 3, 9600)),  # 2016, 2012 R2
    "2019": ((10, 0, 17763), (10, 0, 20348)),  # 2019, 2022
    "SE": ((10, 0, 20348), (10, 0, 26100)),  # 2022, 2025
}
IIS_BY_OS = {
    (5, 2): "Microsoft-IIS/6.0",
    (6, 0): "Microsoft-IIS/7.0",
    (6, 1): "Microsoft-IIS/7.5",
    (6, 2): "Microsoft-IIS/8.0",
    (6, 3): "Microsoft-IIS/8.5",
}

_ORG_HEADS = (
    "north",
    "river",
    "alpen",
    "kommun",
    "agri",
    "stadt",
    "blue",
    "oak",
    "delta",
    "nova",
    "harbor",
    "cedar",
    "metro",
    "lumen",
    "polar",
    "terra",
)
_ORG_TAILS = ("net", "corp", "gov", "med", "bank", "works", "edu", "tel", "energy", "law")
_COMPUTER_STEMS = ("EXCH", "EX", "MAIL", "MBX", "SRV-EX", "CAS", "EXSRV")


@dataclass(frozen=True, slots=True)
class Backend:
    """One Exchange server (a load-balanced address has two)."""

    build: LabBuild
    ntlm: NtlmIdentity


@dataclass(slots=True)
class Host:
    ip: str
    kind: str  # exchange | online | suspect | web | closed | silent | hostile-<behaviour>
    profile: str | None = None  # exposure profile, web flavour or hostile behaviour
    org: str = ""
    backends: list[Backend] = field(default_factory=list)
    owa_header_on: frozenset[str] = frozenset()
    page: str = "stock"  # stock | custom | none
    ecp: str = "open"  # open | 403 | 404 | cu-folder
    feserver: bool = True
    ews: str = "401"  # 401 (NTLM challenge) | 403 | 404
    server_header: str = ""
    tls_cn: str | None = None
    tls_san: tuple[str, ...] = ()
    layout: str | None = None  # a special layout; None: the generic Exchange one
    # What the opt-in checks see (lab/compromise.py): a planted shell or look-alike, a
    # catch-all, mitigations in place.
    compromise: str = "none"
    shell_path: str | None = None
    mitigations: frozenset[str] = frozenset()

    @property
    def serves_tls_by_nginx(self) -> bool:
        return self.kind in {"exchange", "online", "suspect", "web"}

    @property
    def hostile_behaviour(self) -> str | None:
        if self.kind == "silent":
            return "silent"
        return self.kind.removeprefix("hostile-") if self.kind.startswith("hostile-") else None


@dataclass(slots=True)
class Plan:
    hosts: list[Host]
    port: int
    seed: int

    @property
    def cidrs(self) -> list[str]:
        """The smallest set of CIDRs covering exactly the lab's addresses."""
        first = ipaddress.IPv4Address(self.hosts[0].ip)
        last = ipaddress.IPv4Address(self.hosts[-1].ip)
        return [str(n) for n in ipaddress.summarize_address_range(first, last)]


def tls_versions(host: Host) -> tuple[str, ...]:
    """The TLS versions `host` offers, oldest first; () if it never finishes a handshake.

    Exchange: what Schannel of its emulated Windows has, TLS 1.3 only from Server 2022
    (build 20348) on (Windows 2003 had no TLS 1.2 at all; the lab gives it 1.2, as modern
    clients refuse anything older).  IIS web servers: IIS before 10 means Windows before
    2016, so 1.2 only; IIS 10 runs on 2016 to 2025 and its Server header cannot tell them
    apart, so it simply gets 1.2 and 1.3.  nginx, Apache, Exchange Online, honeypots and
    the hostile hosts that finish a handshake: OpenSSL's 1.2 and 1.3.
    """
    if host.kind == "exchange":
        return (TLS12, TLS13) if host.backends[0].ntlm.os_version >= SCHANNEL_TLS13 else (TLS12,)
    if host.kind == "web":
        product, _, version = host.server_header.partition("/")
        if product == "Microsoft-IIS" and int(version.split(".")[0]) < 10:
            return (TLS12,)
        return (TLS12, TLS13)
    if host.kind in {"online", "suspect"}:
        return (TLS12, TLS13)
    if host.hostile_behaviour in HOSTILE_TLS:
        return (TLS12, TLS13)
    return ()


def _counts(n: int) -> dict[str, int]:
    counts = {k: round(share * n) for k, share in KIND_SHARE.items() if k != "exchange"}
    if n >= 30:
        # Large enough to show every behaviour at least once (tests rely on it).
        counts["hostile"] = max(counts["hostile"], len(HOSTILE_STATUS))
        counts["web"] = max(counts["web"], len(WEB_PROFILES))
        counts["suspect"] = max(counts["suspect"], len(SUSPECT_PROFILES))
        counts["online"] = max(counts["online"], 1)
        counts["silent"] = max(counts["silent"], 1)
        counts["closed"] = max(counts["closed"], 1)
    counts["exchange"] = max(0, n - sum(counts.values()))
    while sum(counts.values()) > n:  # tiny labs: trim the rarest kinds first
        for k in ("hostile", "suspect", "online", "silent", "closed", "web"):
            if counts[k] and sum(counts.values()) > n:
                counts[k] -= 1
    return counts


def _weighted(rng: random.Random, weights: dict[str, float], allowed: set[str]) -> str:
    names = [k for k in weights if k in allowed]
    return rng.choices(names, weights=[weights[k] for k in names])[0]


class _Picker:
    """Every option once (in random order), then by weight: small labs still see them all."""

    def __init__(self, rng: random.Random, weights: dict[str, float]) -> None:
        self.rng = rng
        self.weights = weights
        self.unused = list(weights)
        rng.shuffle(self.unused)

    def pick(self, allowed: set[str]) -> str:
        for name in self.unused:
            if name in allowed:
                self.unused.remove(name)
                return name
        return _weighted(self.rng, self.weights, allowed)


def _org(rng: random.Random, i: int) -> str:
    return f"{rng.choice(_ORG_HEADS)}{rng.choice(_ORG_TAILS)}{i}"


def _identity(org: str, computer: str, os_version: tuple[int, int, int]) -> NtlmIdentity:
    domain = f"{org}.local"
    return NtlmIdentity(
        netbios_domain=org.upper()[:15],
        netbios_computer=computer,
        dns_domain=domain,
        dns_computer=f"{computer.lower()}.{domain}",
        dns_tree=domain,
        os_version=os_version,
    )


def _backend(rng: random.Random, build: LabBuild, org: str, index: int) -> Backend:
    os_version = rng.choice(OS_BY_LINE[build.line])
    computer = f"{rng.choice(_COMPUTER_STEMS)}{index:02d}"
    return Backend(build, _identity(org, computer, os_version))


def _pick_build(
    rng: random.Random,
    profile: str,
    line: str,
    builds: dict[str, list[LabBuild]],
    releases: dict[tuple[int, int, int], LabBuild],
) -> LabBuild:
    choices = builds[line]
    if profile in {"ews-only", "closed-owa-apache"}:
        choices = [b for b in choices if b.autodiscover_header] or choices
    elif profile == "ecp-cu-path":
        # a build whose CU the build table knows the first build of (the folder's name)
        choices = [b for b in choices if b.parts[:3] in releases] or choices
    return rng.choice(choices)


def _exchange_host(
    ip: str,
    i: int,
    rng: random.Random,
    profiles: _Picker,
    lines: _Picker,
    builds: dict[str, list[LabBuild]],
    releases: dict[tuple[int, int, int], LabBuild],
) -> Host:
    org = _org(rng, i)
    profile = profiles.pick(set(EXCHANGE_PROFILES))
    if profile in PROFILE_LINES:
        line = PROFILE_LINES[profile]
    elif profile == "load-balancer-3":
        line = lines.pick({"2016", "2019"})  # lines with many CUs: three different ones
    else:
        allowed_lines = (
            set(LINE_WEIGHTS) if profile in PROFILES_2010 else set(LINE_WEIGHTS) - {"2010"}
        )
        line = lines.pick(allowed_lines)
    build = _pick_build(rng, profile, line, builds, releases)
    if profile == "ews-only" and not build.autodiscover_header:
        profile = "full"  # this line has no build that shows the header on autodiscover
    first = _backend(rng, build, org, rng.randint(1, 7))
    backends = [first]
    for extra in range(1, LOAD_BALANCED.get(profile, 1)):
        # More servers of the same organisation: the next names, other builds (other CUs
        # where the line has them), same Windows.
        used = {x.build for x in backends}
        used_cus = {x.build.parts[:3] for x in backends}
        others = [b for b in builds[line] if b.parts[:3] not in used_cus]
        others = others or [b for b in builds[line] if b not in used] or [build]
        who = first.ntlm
        name = f"{who.netbios_computer[:-2]}{int(who.netbios_computer[-2:]) + extra:02d}"
        backends.append(Backend(rng.choice(others), _identity(org, name, who.os_version)))
    host = Host(ip=ip, kind="exchange", profile=profile, org=org, backends=backends)
    is_2010 = line == "2010"
    ad = {AUTODISCOVER} if build.autodiscover_header else set()
    host.feserver = line not in {"2003", "2007", "2010"}  # X-FEServer: the 2013+ CAS proxy
    host.ecp = "404" if line in {"2003", "2007", "2010"} else "open"  # the tool is 2013+
    iis = IIS_BY_OS.get(backends[0].ntlm.os_version[:2], "Microsoft-IIS/10.0")
    host.server_header = iis
    if profile in {"full", "load-balancer"}:
        host.owa_header_on = frozenset({OWA, LOGON, SERVICE, EWS} | ad)
        if is_2010:
            host.owa_header_on = frozenset({OWA, LOGON})
        if profile == "load-balancer":
            host.ecp = "404"  # what each server shows must come from its own logon page
    elif profile == "load-balancer-3":
        host.ecp = "404"
    elif profile == "service-header":
        host.owa_header_on = frozenset({SERVICE} | ad)
        host.ecp = rng.choice(("open", "403"))
    elif profile == "manifest-only":
        pass
    elif profile == "page-only":
        host.ecp = "404" if is_2010 else rng.choice(("403", "404"))
    elif profile == "proxy-stripped":
        host.ecp = "404"
        host.feserver = False
        host.ews = rng.choice(("401", "403"))
        host.server_header = rng.choice(("BigIP", "nginx", "Apache"))
    elif profile == "custom-logon":
        host.page = "custom"
        host.ecp = "404"
    elif profile == "ews-only":
        host.page = "none"
        host.ecp = "404"
        host.owa_header_on = frozenset({AUTODISCOVER})
    elif profile == "ecp-cu-path":
        host.ecp = "cu-folder"
    elif profile == "closed-owa-nginx":
        host.layout = "exchange-closed-nginx"
        host.page, host.ecp, host.feserver = "none", "404", False
        host.server_header = "nginx"
    elif profile == "closed-owa-apache":
        host.layout = "exchange-closed-apache"
        host.page, host.ecp = "none", "404"
        host.owa_header_on = frozenset({EWS} | ad) if ad else frozenset()
        host.server_header = "Apache/2.4.62 (Debian)"
    elif profile == "fba-off":
        host.layout = "exchange-fba-off"
        host.page, host.ecp = "none", "404"
    elif profile == "legacy-2003":
        host.layout = "exchange-2003"
        host.page, host.ecp, host.ews = "none", "404", "404"
    elif profile == "legacy-2007":
        host.owa_header_on = frozenset({OWA, LOGON})
    if rng.random() < 0.7:
        host.tls_cn = f"mail.{org}.example"
        host.tls_san = (host.tls_cn, f"autodiscover.{org}.example")
    else:  # Exchange's default self-signed certificate: the server's own name
        host.tls_cn = backends[0].ntlm.netbios_computer
        host.tls_san = (host.tls_cn, backends[0].ntlm.dns_computer)
    return host


def _online_host(ip: str, i: int, rng: random.Random) -> Host:
    """An Exchange Online front end (Microsoft's names; no build, no NTLM of a customer)."""
    region = rng.choice(("AM", "DB", "PH", "SN", "BY"))
    name = f"{region}{rng.randint(0, 9)}PR{rng.randint(1, 19):02d}CA{rng.randint(1, 9999):04d}"
    host = Host(ip=ip, kind="online", profile="exchange-online", org=f"exo{i}")
    host.layout = "exchange-online"
    host.server_header = "Microsoft-IIS/10.0"
    host.tls_cn = "outlook.office365.com"
    host.tls_san = ("outlook.office365.com", "*.outlook.office365.com", "outlook.office.com")
    # One pseudo-backend carries the front end's name and region for the routes.
    who = NtlmIdentity("EURPRD01", name, "prod.outlook.com", "", "prod.outlook.com", (10, 0, 20348))
    host.backends = [Backend(LabBuild((15, 20, 7587, 36)), who)]
    return host


def _suspect_host(ip: str, i: int, rng: random.Random, profile: str) -> Host:
    org = _org(rng, i)
    host = Host(ip=ip, kind="suspect", profile=profile, org=org, layout=profile)
    build = {
        "honeypot-flask": HONEYPOT_FLASK_BUILD,
        "honeypot-catchall": HONEYPOT_CATCHALL_BUILD,
        "impostor-online-headers": HONEYPOT_CATCHALL_BUILD,
    }[profile]
    parsed = parse_build(build)
    assert parsed is not None
    host.backends = [
        Backend(parsed, _identity(org, "EXCH01", (10, 0, 17763)))
    ]  # pages only; no NTLM is served
    host.server_header = "Microsoft-IIS/7.5" if profile == "honeypot-flask" else ""
    if profile == "honeypot-catchall":
        host.server_header = "Microsoft-IIS/10.0"
    if profile == "impostor-online-headers":
        host.server_header = "Microsoft-IIS/10.0"  # faked by the kit's proxy
    host.ews = "404"
    host.tls_cn = f"mail.{org}.example"
    host.tls_san = (host.tls_cn,)
    return host


def make_plan(hosts: int, seed: int = 1, port: int = 8443, base: str = DEFAULT_BASE) -> Plan:
    """Lay out `hosts` simulated hosts on consecutive addresses from `base`."""
    if hosts < 1:
        raise ValueError("a lab needs at least one host")
    first = ipaddress.IPv4Address(base)
    last = first + (hosts - 1)
    if not first.is_loopback or not last.is_loopback:
        raise ValueError(f"lab addresses must stay inside 127.0.0.0/8 (got {first}..{last})")
    if first <= ipaddress.IPv4Address("127.0.0.1") <= last:
        raise ValueError("the lab's address range must not include 127.0.0.1")
    rng = random.Random(f"exwatch-lab:{seed}")  # noqa: S311 (a reproducible layout, no secret)
    builds = load_builds()
    releases = load_cu_releases()
    counts = _counts(hosts)
    kinds: list[str] = []
    for kind, count in counts.items():
        if kind == "hostile":
            names = list(HOSTILE_STATUS)
            kinds += [f"hostile-{names[j % len(names)]}" for j in range(count)]
        else:
            kinds += [kind] * count
    rng.shuffle(kinds)
    profiles = _Picker(rng, EXCHANGE_PROFILES)
    lines = _Picker(rng, LINE_WEIGHTS)
    webs = _Picker(rng, dict.fromkeys(WEB_PROFILES, 1.0))
    suspects = _Picker(rng, dict.fromkeys(SUSPECT_PROFILES, 1.0))
    plan: list[Host] = []
    for i, kind in enumerate(kinds):
        ip = str(first + i)
        if kind == "exchange":
            plan.append(_exchange_host(ip, i, rng, profiles, lines, builds, releases))
        elif kind == "online":
            plan.append(_online_host(ip, i, rng))
        elif kind == "suspect":
            plan.append(_suspect_host(ip, i, rng, suspects.pick(set(SUSPECT_PROFILES))))
        elif kind == "web":
            flavour = webs.pick(set(WEB_PROFILES))
            org = _org(rng, i)
            plan.append(
                Host(
                    ip=ip,
                    kind="web",
                    profile=flavour,
                    org=org,
                    server_header=WEB_SERVER_HEADER[flavour],
                    tls_cn=f"www.{org}.example",
                    tls_san=(f"www.{org}.example",),
                )
            )
        else:
            host = Host(ip=ip, kind=kind)
            host.profile = host.hostile_behaviour
            plan.append(host)
    compromise.assign(plan, seed)
    return Plan(plan, port, seed)


def _key(build: str) -> tuple[int, ...]:
    return tuple(int(p) for p in build.split("."))


def _seen(host: Host, backend: Backend) -> tuple[list[str], set[str]]:
    """(builds visible, techniques that showed something) for one backend of an Exchange host."""
    b = backend.build
    seen: list[str] = []
    techniques: set[str] = set()
    reachable = set(host.owa_header_on)
    if host.page == "none":
        reachable -= {OWA, LOGON, SERVICE}
    if host.ews != "401":
        reachable -= {EWS, AUTODISCOVER}
    if reachable:
        seen.append(b.full)
        techniques.add("x-owa-version")
    if host.ecp in {"open", "cu-folder"} and b.line not in {"2003", "2007", "2010"}:
        seen.append(b.full)
        techniques.add("exporttool")
    if host.page == "stock":
        seen.append(b.full if b.line in {"2007", "2010"} else b.cu_level)
        techniques.add("owa-path")
    elif host.page == "custom":
        techniques.add("logon-page")
        if b.line not in {"2007", "2010"}:  # errorFE.aspx is a 2013+ front-end page
            seen.append(b.cu_level)
            techniques.add("errorfe")
    if host.feserver:
        techniques.add("x-feserver")
    if host.ews == "401":
        techniques.add("ntlm")
    if host.layout in {"exchange-closed-nginx", "exchange-closed-apache", "exchange-fba-off"}:
        techniques.add("auth-endpoints")
    if host.layout == "exchange-2003":
        techniques.add("legacy-owa")
    return seen, techniques


def _fold(builds: set[str]) -> list[str]:
    """Builds as one scanner reports them: a CU-level build of a CU also seen with four
    parts is that build, less precisely."""
    full_cus = {b.rsplit(".", 1)[0] for b in builds if b.count(".") == 3}
    kept = {b for b in builds if b.count(".") == 3 or b not in full_cus}
    return sorted(kept, key=_key)


def expected(host: Host, port: int) -> dict[str, Any]:
    """What a perfect scanner reports for this host (see the module docstring)."""
    out: dict[str, Any] = {
        "ip": host.ip,
        "port": port,
        "kind": host.kind,
        "profile": host.profile,
        "build": None,
        "precision": None,
        "product": None,
        "expected_status": "success",
        "techniques": [],
        "builds_seen": [],
        "true_builds": [],
        "ntlm": None,
        "ntlm_seen": [],
        "x_feserver": [],
        "suspect_checks": [],
        "server_header": host.server_header or None,
        "tls_cn": host.tls_cn,
        "tls_versions": list(tls_versions(host)),
    }
    if host.kind == "closed":
        out["expected_status"] = "connection-refused"
    elif host.kind == "silent":
        out["expected_status"] = "io-timeout"
    elif host.kind.startswith("hostile-"):
        out["expected_status"] = HOSTILE_STATUS[host.kind.removeprefix("hostile-")]
    if host.kind == "online":
        out["product"] = "Exchange Online"
        out["x_feserver"] = [host.backends[0].ntlm.netbios_computer]
        out["techniques"] = ["exchange-online"]
    if host.kind == "suspect" and host.profile is not None:
        out["suspect_checks"] = sorted(SUSPECT_PROFILES[host.profile])
        out["true_builds"] = [b.build.full for b in host.backends]
    if host.kind != "exchange":
        return out
    out["checks"] = compromise.expected(host)
    techniques: set[str] = set()
    seen_all: set[str] = set()
    for backend in host.backends:
        seen, techs = _seen(host, backend)
        techniques |= techs
        seen_all |= set(seen)
    folded = _fold(seen_all)
    if folded:
        # The weakest server behind the address is the exposure: the oldest build.
        build = min(folded, key=_key)
        out["build"] = build
        out["precision"] = "su" if build.count(".") == 3 else "cu"
    visible_product = bool(folded) or host.layout == "exchange-2003"
    out["product"] = PRODUCT_NAMES[host.backends[0].build.line] if visible_product else None
    out["techniques"] = sorted(techniques)
    out["builds_seen"] = folded
    out["true_builds"] = [b.build.full for b in host.backends]
    if host.ews == "401":
        out["ntlm_seen"] = [b.ntlm.to_json() for b in host.backends]
        out["ntlm"] = out["ntlm_seen"][0]
    if host.feserver:
        out["x_feserver"] = [b.ntlm.netbios_computer for b in host.backends]
    return out


def ground_truth(plan: Plan) -> dict[str, Any]:
    """The ground-truth document written next to the lab (`hosts` maps ip -> expected)."""
    counts: dict[str, int] = {}
    for h in plan.hosts:
        counts[h.kind] = counts.get(h.kind, 0) + 1
    return {
        "schema_version": GROUND_TRUTH_VERSION,
        "generator": "exwatch lab",
        "seed": plan.seed,
        "port": plan.port,
        "cidrs": plan.cidrs,
        "counts": dict(sorted(counts.items())),
        "hosts": {h.ip: expected(h, plan.port) for h in plan.hosts},
    }
