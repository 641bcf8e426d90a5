"""The lab's host plan: who lives at which address, how each host shows itself, and the
ground truth a perfect scanner should report for it.

Pure and deterministic: the same (hosts, seed, base, port) always gives the same plan.
"Perfect scanner" means one that uses the passive techniques 1, 2, 3, 5 and 6 of the
fingerprinting reference (X-OWA-Version on /owa/, /owa/auth/logon.aspx, /owa/service,
/EWS/, /autodiscover/; OWA resource paths; the exporttool manifest; X-FEServer; the NTLM
challenge), but no folder brute force.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, field
from typing import Any

from exwatch.lab.builds import LINES, PRODUCT_NAMES, LabBuild, load_builds
from exwatch.lab.ntlm import NtlmIdentity

GROUND_TRUTH_VERSION = 1
DEFAULT_BASE = "127.16.0.1"

# Endpoints that can carry X-OWA-Version.
OWA, LOGON, SERVICE, EWS, AUTODISCOVER = "owa", "logon", "service", "ews", "autodiscover"

# Exchange exposure profiles with their weight in the default mix.
EXCHANGE_PROFILES: dict[str, float] = {
    "full": 0.30,  # header on every endpoint, stock page, manifest, X-FEServer, NTLM
    "service-header": 0.15,  # header only on /owa/service (and autodiscover on newer builds)
    "manifest-only": 0.10,  # no header anywhere, ECP published
    "page-only": 0.15,  # no header, ECP blocked: 3-part from the page (4-part on 2010)
    "proxy-stripped": 0.12,  # reverse proxy drops X-OWA-Version and X-FEServer, ECP 404
    "custom-logon": 0.06,  # branded logon page without versioned paths: build hidden
    "load-balancer": 0.07,  # two builds behind one address, alternating per connection
    "ews-only": 0.05,  # OWA not published; header on the autodiscover 401 only
}
PROFILES_2010 = ("full", "page-only", "proxy-stripped", "custom-logon")
LINE_WEIGHTS = {"2010": 0.10, "2013": 0.20, "2016": 0.30, "2019": 0.30, "SE": 0.10}

WEB_PROFILES = ("iis-default", "nginx-default", "apache-default", "webmail")
WEB_SERVER_HEADER = {
    "iis-default": "Microsoft-IIS/10.0",
    "nginx-default": "nginx/1.22.1",
    "apache-default": "Apache/2.4.62 (Debian)",
    "webmail": "Apache",
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
KIND_SHARE = {"exchange": 0.60, "web": 0.15, "closed": 0.15, "silent": 0.05, "hostile": 0.05}

# TLS versions by the names nginx's ssl_protocols and ssl.SSLSocket.version() use.
TLS12, TLS13 = "TLSv1.2", "TLSv1.3"
SCHANNEL_TLS13 = (10, 0, 20348)  # Windows Server 2022: the first Schannel with TLS 1.3

OS_BY_LINE: dict[str, tuple[tuple[int, int, int], ...]] = {
    "2010": ((6, 1, 7601),),  # Windows Server 2008 R2 SP1
    "2013": ((6, 3, 9600), (6, 2, 9200)),  # 2012 R2, 2012
    "2016": ((10, 0, 14393), (6, 3, 9600)),  # 2016, 2012 R2
    "2019": ((10, 0, 17763), (10, 0, 20348)),  # 2019, 2022
    "SE": ((10, 0, 20348), (10, 0, 26100)),  # 2022, 2025
}
IIS_BY_OS = {(6, 1): "Microsoft-IIS/7.5", (6, 2): "Microsoft-IIS/8.0", (6, 3): "Microsoft-IIS/8.5"}

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
    kind: str  # exchange | web | closed | silent | hostile-<behaviour>
    profile: str | None = None  # exchange exposure profile, web flavour or hostile behaviour
    org: str = ""
    backends: list[Backend] = field(default_factory=list)
    owa_header_on: frozenset[str] = frozenset()
    page: str = "stock"  # stock | custom | none
    ecp: str = "open"  # open | 403 | 404
    feserver: bool = True
    ews: str = "401"  # 401 (NTLM challenge) | 403 | 404
    server_header: str = ""
    tls_cn: str | None = None
    tls_san: tuple[str, ...] = ()

    @property
    def serves_tls_by_nginx(self) -> bool:
        return self.kind in {"exchange", "web"}

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
    (build 20348) on.  IIS web servers: IIS before 10 means Windows before 2016, so 1.2
    only; IIS 10 runs on 2016 to 2025 and its Server header cannot tell them apart, so
    it simply gets 1.2 and 1.3.  nginx, Apache and the hostile hosts that finish a
    handshake: OpenSSL's 1.2 and 1.3.
    """
    if host.kind == "exchange":
        return (TLS12, TLS13) if host.backends[0].ntlm.os_version >= SCHANNEL_TLS13 else (TLS12,)
    if host.kind == "web":
        product, _, version = host.server_header.partition("/")
        if product == "Microsoft-IIS" and int(version.split(".")[0]) < 10:
            return (TLS12,)
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
        counts["silent"] = max(counts["silent"], 1)
        counts["closed"] = max(counts["closed"], 1)
    counts["exchange"] = max(0, n - sum(counts.values()))
    while sum(counts.values()) > n:  # tiny labs: trim the rarest kinds first
        for k in ("hostile", "silent", "closed", "web"):
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


def _backend(rng: random.Random, build: LabBuild, org: str, index: int) -> Backend:
    os_version = rng.choice(OS_BY_LINE[build.line])
    computer = f"{rng.choice(_COMPUTER_STEMS)}{index:02d}"
    domain = f"{org}.local"
    who = NtlmIdentity(
        netbios_domain=org.upper()[:15],
        netbios_computer=computer,
        dns_domain=domain,
        dns_computer=f"{computer.lower()}.{domain}",
        dns_tree=domain,
        os_version=os_version,
    )
    return Backend(build, who)


def _exchange_host(
    ip: str,
    i: int,
    rng: random.Random,
    profiles: _Picker,
    lines: _Picker,
    builds: dict[str, list[LabBuild]],
) -> Host:
    org = _org(rng, i)
    profile = profiles.pick(set(EXCHANGE_PROFILES))
    allowed_lines = set(LINES) if profile in PROFILES_2010 else set(LINES) - {"2010"}
    line = lines.pick(allowed_lines)
    choices = builds[line]
    if profile == "ews-only":
        choices = [b for b in choices if b.autodiscover_header] or choices
    build = rng.choice(choices)
    if profile == "ews-only" and not build.autodiscover_header:
        profile = "full"  # this line has no build that shows the header on autodiscover
    first = _backend(rng, build, org, rng.randint(1, 8))
    backends = [first]
    if profile == "load-balancer":
        # A second server of the same organisation with the next name and another build.
        others = [b for b in builds[line] if b != build] or [build]
        who = first.ntlm
        name = f"{who.netbios_computer[:-2]}{int(who.netbios_computer[-2:]) + 1:02d}"
        backends.append(
            Backend(
                rng.choice(others),
                NtlmIdentity(
                    who.netbios_domain,
                    name,
                    who.dns_domain,
                    f"{name.lower()}.{who.dns_domain}",
                    who.dns_tree,
                    who.os_version,
                ),
            )
        )
    host = Host(ip=ip, kind="exchange", profile=profile, org=org, backends=backends)
    is_2010 = line == "2010"
    ad = {AUTODISCOVER} if build.autodiscover_header else set()
    host.feserver = not is_2010  # X-FEServer comes with the 2013+ CAS proxy
    host.ecp = "404" if is_2010 else "open"  # 2010 has no eDiscovery export tool manifest
    iis = IIS_BY_OS.get(backends[0].ntlm.os_version[:2], "Microsoft-IIS/10.0")
    host.server_header = iis
    if profile in {"full", "load-balancer"}:
        host.owa_header_on = frozenset({OWA, LOGON, SERVICE, EWS} | ad)
        if is_2010:
            host.owa_header_on = frozenset({OWA, LOGON})
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
    if rng.random() < 0.7:
        host.tls_cn = f"mail.{org}.example"
        host.tls_san = (host.tls_cn, f"autodiscover.{org}.example")
    else:  # Exchange's default self-signed certificate: the server's own name
        host.tls_cn = backends[0].ntlm.netbios_computer
        host.tls_san = (host.tls_cn, backends[0].ntlm.dns_computer)
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
    plan: list[Host] = []
    for i, kind in enumerate(kinds):
        ip = str(first + i)
        if kind == "exchange":
            plan.append(_exchange_host(ip, i, rng, profiles, lines, builds))
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
    return Plan(plan, port, seed)


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
    if host.ecp == "open" and b.line != "2010":
        seen.append(b.full)
        techniques.add("exporttool")
    if host.page == "stock":
        seen.append(b.full if b.line == "2010" else b.cu_level)
        techniques.add("owa-path")
    elif host.page == "custom":
        techniques.add("logon-page")
    if host.feserver:
        techniques.add("x-feserver")
    if host.ews == "401":
        techniques.add("ntlm")
    return seen, techniques


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
    if host.kind != "exchange":
        return out
    best: list[str] = []
    techniques: set[str] = set()
    seen_all: set[str] = set()
    for backend in host.backends:
        seen, techs = _seen(host, backend)
        techniques |= techs
        seen_all |= set(seen)
        if seen:
            best.append(max(seen, key=lambda s: (s.count("."), s)))
    four = [s for s in best if s.count(".") == 3]
    pick = four or best
    if pick:
        # Behind a load balancer the lower build is the conservative answer.
        build = min(pick, key=lambda s: tuple(int(p) for p in s.split(".")))
        out["build"] = build
        out["precision"] = "su" if build.count(".") == 3 else "cu"
    out["product"] = PRODUCT_NAMES[host.backends[0].build.line]
    out["techniques"] = sorted(techniques)
    out["builds_seen"] = sorted(seen_all, key=lambda s: tuple(int(p) for p in s.split(".")))
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
