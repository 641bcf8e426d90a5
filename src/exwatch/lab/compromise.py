"""What the lab's Exchange hosts show to the opt-in checks, and the ground truth for it.

On top of each host's exposure profile (plan.py) some hosts carry a compromise shape and
some a mitigation; every host's code path is vulnerable or not by its true build:

- compromise shapes: `shell-oab` (the ProxyLogon OAB-settings shell), `shell-pst` (a
  ProxyShell PST export), `shell-error` (an .aspx at a known path that fails), each at one
  known path of compromise.yaml; `catchall` (every unknown path answers the logon page,
  200), `catchall-shell` (the same, with an OAB shell), `lookalike-page` (known paths
  answer an advisory page quoting shells, not a shell), `lookalike-errors` (every .aspx
  under /aspnet_client/ fails, a random name too), and `none`;
- mitigations: `eomt` (March 2021: requests with the ProxyLogon cookies are aborted) and
  `proxynotshell-rewrite` (requests whose URI has autodiscover and powershell are aborted);
- behaviour: a server whose true build is vulnerable (assess) to CVE-2021-26855 answers
  the ProxyLogon request as the vulnerable front end does, one vulnerable to
  CVE-2021-34473 answers the Autodiscover path confusion with the back end's MAPI page,
  where OWA or Autodiscover is published at all.

Deterministic: a random generator of its own (seeded from the plan's seed), so the
exposure plan of a seed is the same with or without these overlays.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from exwatch.lab.plan import Backend, Host

PROXYLOGON, PROXYSHELL, PROXYNOTSHELL = "CVE-2021-26855", "CVE-2021-34473", "CVE-2022-41040"
EOMT, PNS_REWRITE = "eomt", "proxynotshell-rewrite"
# Compromise shapes with their weight among eligible hosts (every one shows at least once).
COMPROMISE_KINDS: dict[str, float] = {
    "none": 0.82,
    "shell-oab": 0.03,
    "shell-pst": 0.03,
    "shell-error": 0.02,
    "catchall": 0.03,
    "catchall-shell": 0.02,
    "lookalike-page": 0.03,
    "lookalike-errors": 0.02,
}
CATCHALL_KINDS = frozenset({"catchall", "catchall-shell"})
SHELL_SHAPE = {"shell-oab": "oab-vdir-dump", "catchall-shell": "oab-vdir-dump"}
SHELL_SHAPE |= {"shell-pst": "pst-export", "shell-error": "aspx-runtime-error"}
# The shell-error path is fixed (the lab's routers match it as a rule).
ERROR_SHELL_PATH = "/aspnet_client/errorcheck.aspx"
LOOKALIKE_PATHS = ("/aspnet_client/shell.aspx", "/owa/auth/errorEE.aspx")
MODERN = frozenset({"2013", "2016", "2019"})
CATCHALL_LAYOUT = "exchange-stock-open-401-catchall"
_CLOSED_AUTODISCOVER = frozenset(
    {"exchange-closed-nginx", "exchange-closed-apache", "exchange-fba-off"}
)


@lru_cache(maxsize=4096)
def _verdict(build: str, cve: str) -> str:
    from exwatch.assess import assess

    return assess(build).cves[cve].verdict.value


def vulnerable(backend: Backend, cve: str) -> bool:
    """Whether the server's true build is vulnerable to `cve` (what its code does)."""
    return _verdict(backend.build.full, cve) == "vulnerable"


def publishes_owa(host: Host) -> bool:
    """OWA reaches Exchange (the generic layouts with a logon page)."""
    return host.layout in (None, CATCHALL_LAYOUT) and host.page != "none"


def publishes_autodiscover(host: Host) -> bool:
    """Autodiscover reaches Exchange (directly or through the closed-OWA proxies)."""
    if host.layout in _CLOSED_AUTODISCOVER:
        return True
    return host.layout in (None, CATCHALL_LAYOUT) and host.ews == "401"


def _eligible_compromise(host: Host) -> set[str]:
    """The compromise kinds a host can carry (an empty set: none at all)."""
    if host.kind != "exchange" or host.layout is not None or len(host.backends) != 1:
        return set()
    if host.backends[0].build.line not in MODERN:
        return set()
    kinds = set(COMPROMISE_KINDS) - CATCHALL_KINDS
    if host.page != "stock":
        kinds -= {"lookalike-page"}  # one of its pages lives under /owa/auth/
    if host.profile == "full" and (host.page, host.ecp, host.ews) == ("stock", "open", "401"):
        kinds |= CATCHALL_KINDS
    return kinds


class _Picker:
    """Every allowed option once (random order), then by weight."""

    def __init__(self, rng: random.Random, weights: dict[str, float]) -> None:
        self.rng, self.weights = rng, weights
        self.unused = [k for k in weights if k != "none"]
        rng.shuffle(self.unused)

    def pick(self, allowed: set[str]) -> str:
        for name in self.unused:
            if name in allowed:
                self.unused.remove(name)
                return name
        names = [k for k in self.weights if k in allowed]
        return self.rng.choices(names, weights=[self.weights[k] for k in names])[0]


def _shell_path(rng: random.Random, host: Host, kind: str) -> str | None:
    from exwatch.checks.indicators import load

    if kind == "shell-error":
        return ERROR_SHELL_PATH
    if kind not in SHELL_SHAPE:
        return None
    folders = ("/aspnet_client/", "/owa/auth/") if host.page != "none" else ("/aspnet_client/",)
    choices = sorted(p.path for p in load().paths if p.folder in folders)
    return rng.choice(choices)


def assign(hosts: Iterable[Host], seed: int) -> None:
    """Give the plan's hosts their compromise shapes and mitigations (in place)."""
    rng = random.Random(f"exwatch-lab-checks:{seed}")  # noqa: S311 (a reproducible layout)
    picker = _Picker(rng, COMPROMISE_KINDS)
    unused = {EOMT: True, PNS_REWRITE: True}
    for host in hosts:
        if host.kind != "exchange":
            continue
        allowed = _eligible_compromise(host)
        if allowed:
            kind = picker.pick(allowed)
            host.compromise = kind
            host.shell_path = _shell_path(rng, host, kind)
            if kind in CATCHALL_KINDS:
                host.layout = CATCHALL_LAYOUT
        mitigations: set[str] = set()
        b0 = host.backends[0]
        for name, cve, applies in (
            (EOMT, PROXYLOGON, publishes_owa(host)),
            (PNS_REWRITE, PROXYNOTSHELL, publishes_autodiscover(host)),
        ):
            if not applies or b0.build.line not in MODERN | {"SE"}:
                continue
            # Mostly where the server needed it (the first such server always), now and
            # then on a patched one too (left in place after the update).
            if vulnerable(b0, cve):
                if unused[name] or rng.random() < 0.4:
                    mitigations.add(name)
                    unused[name] = False
            elif rng.random() < 0.03:
                mitigations.add(name)
        host.mitigations = frozenset(mitigations)


# Shapes that put files into the host's document root (its root is then its own).
PLANTED = frozenset({"shell-oab", "shell-pst", "catchall-shell", "lookalike-page"})


def _oab_dump(backend: Backend) -> bytes:
    """The OAB virtual directory's settings as the ProxyLogon shell file holds them, as a
    GET shows it (the JScript in ExternalUrl runs on the server and shows nothing)."""
    major, minor, build, rev = backend.build.parts
    who = backend.ntlm
    rows = (
        ("Name", "OAB (Default Web Site)"),
        ("PollInterval", "480"),
        ("OfflineAddressBooks", ""),
        ("RequireSSL", "False"),
        ("BasicAuthentication", "False"),
        ("WindowsAuthentication", "True"),
        ("MetabasePath", f"IIS://{who.dns_computer}/W3SVC/1/ROOT/OAB"),
        ("Path", r"C:\Program Files\Microsoft\Exchange Server\V15\FrontEnd\HttpProxy\OAB"),
        ("ExtendedProtectionTokenChecking", "None"),
        ("AdminDisplayVersion", f"Version {major}.{minor} (Build {build}.{rev})"),
        ("Server", who.netbios_computer),
        ("InternalUrl", f"https://{who.dns_computer}/OAB"),
        ("InternalAuthenticationMethods", "{WindowsIntegrated}"),
        ("ExternalUrl", "http://f/"),
        ("ExternalAuthenticationMethods", "{WindowsIntegrated}"),
    )
    return "".join(f"{k:<32}: {v}\r\n" for k, v in rows).encode("latin-1")


# A PST file's header (the ProxyShell export): magic, then binary, the shell's text inside.
_PST = (
    b"!BDN\x8e\x1c\x9a\x01SM\x17\x00\x01\x01"
    + bytes(range(0, 64))
    + b"\x00\x00"
    + b"\x9c\x03<\xe9\x17\x00\x00\x00\x01\x00\x00\x00" * 8
)
_ADVISORY = (
    b"<!DOCTYPE html><html><head><title>Security notice</title></head><body>"
    b"<h1>About the March 2021 web shells</h1><p>Attackers wrote files such as "
    b'<code>shell.aspx</code> holding <code>&lt;script language="JScript" '
    b'runat="server"&gt;function Page_Load(){eval(Request["x"],"unsafe");}'
    b"&lt;/script&gt;</code>, or the OAB (Default Web Site) settings with ExternalUrl, "
    b"InternalUrl and InternalAuthenticationMethods in them. PST files start with !BDN. "
    b"This server was checked and cleaned.</p></body></html>"
)


def planted_files(host: Host, backend: Backend) -> dict[str, bytes]:
    """Files a compromise shape puts into the document root (URL path -> content)."""
    if host.compromise in ("shell-oab", "catchall-shell") and host.shell_path:
        return {host.shell_path: _oab_dump(backend)}
    if host.compromise == "shell-pst" and host.shell_path:
        return {host.shell_path: _PST}
    if host.compromise == "lookalike-page":
        return dict.fromkeys(LOOKALIKE_PATHS, _ADVISORY)
    return {}


def gates(host: Host, backend: Backend) -> dict[str, str]:
    """The lab routers' rule gates for one server of a host (routes.RULES)."""
    on = {True: "1", False: ""}
    exchange = host.kind == "exchange"
    owa = exchange and publishes_owa(host)
    autodiscover = exchange and publishes_autodiscover(host)
    return {
        "lab_m_eomt": on[EOMT in host.mitigations],
        "lab_m_pns": on[PNS_REWRITE in host.mitigations],
        "lab_v_pl": on[owa and vulnerable(backend, PROXYLOGON)],
        "lab_pub_owa": on[owa],
        "lab_v_ps": on[autodiscover and vulnerable(backend, PROXYSHELL)],
        "lab_c_errors": on[host.compromise == "lookalike-errors"],
        "lab_c_shellerr": on[host.compromise == "shell-error"],
    }


def expected(host: Host) -> dict[str, Any]:
    """What a perfect scanner's opt-in checks report for an on-prem Exchange host: the
    compromise state (with the shell's path and shape) and each behavioural reading (of
    the server that answers a new connection's first request: the first backend)."""
    kind = host.compromise
    if kind in SHELL_SHAPE:
        compromise = {
            "state": "compromised",
            "paths": [host.shell_path],
            "shapes": [SHELL_SHAPE[kind]],
        }
    elif kind in ("catchall", "lookalike-page", "lookalike-errors"):
        compromise = {"state": "unknown", "paths": [], "shapes": []}
    else:
        compromise = {"state": "clean-at-known-paths", "paths": [], "shapes": []}
    b0 = host.backends[0]
    if EOMT in host.mitigations:
        proxylogon = "mitigated"
    elif publishes_owa(host):
        proxylogon = "vulnerable" if vulnerable(b0, PROXYLOGON) else "not-vulnerable"
    elif host.layout == "exchange-fba-off":
        proxylogon = "not-vulnerable"  # IIS asks for Windows authentication on /owa
    else:
        proxylogon = "inconclusive"  # a proxy's or a blocked path's bare answer
    if publishes_autodiscover(host):
        proxyshell = "vulnerable" if vulnerable(b0, PROXYSHELL) else "not-vulnerable"
        pns = "mitigated" if PNS_REWRITE in host.mitigations else "not-mitigated"
    else:
        proxyshell = pns = "inconclusive"
    return {
        "compromise": compromise,
        "behaviour": {
            "proxylogon": proxylogon,
            "proxyshell": proxyshell,
            "proxynotshell-mitigation": pns,
        },
        "mitigations": sorted(host.mitigations),
        "compromise_kind": kind,
    }


__all__ = [
    "COMPROMISE_KINDS",
    "EOMT",
    "ERROR_SHELL_PATH",
    "LOOKALIKE_PATHS",
    "PLANTED",
    "PNS_REWRITE",
    "SHELL_SHAPE",
    "assign",
    "expected",
    "gates",
    "planted_files",
    "publishes_autodiscover",
    "publishes_owa",
    "vulnerable",
]
