"""Options `scan` and `census submit` share, spelled once so that a census is described
exactly as a scan is."""

from __future__ import annotations

import click

from exwatch.checks import catalogue
from exwatch.net.transport import DEFAULT_TRANSPORT, TRANSPORTS, client_class

TIMEOUT = click.option(
    "--timeout",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0.05, 120),
    help="Seconds per phase (connect, TLS, read).",
)

ALLOW_PRIVATE = click.option(
    "--allow-private", is_flag=True, help="Allow private, loopback and reserved ranges."
)

SEED = click.option(
    "--seed", default=0, show_default=True, type=int, help="Seed of the pseudo-random target order."
)

PLAIN_HTTP = click.option(
    "--plain-http", is_flag=True, help="Speak HTTP instead of HTTPS on the port."
)

FOLLOW_UPS = click.option(
    "--follow-ups/--no-follow-ups",
    default=True,
    show_default=True,
    help="Probe Exchange hosts further (manifest, NTLM, OWA headers) or read only the logon page.",
)

ADD_PROBE = click.option(
    "--add-probe",
    "extra_probes",
    multiple=True,
    metavar="ID",
    help="Also run this passive probe that is not in the default set (e.g. http-frontend).",
)

TRANSPORT = click.option(
    "--transport",
    type=click.Choice(TRANSPORTS),
    default=DEFAULT_TRANSPORT,
    show_default=True,
    help="HTTP(S) client: python (asyncio + ssl) or wreq (Rust + BoringSSL, less CPU per"
    " host, no TLS version/cipher in records; needs pip install 'exwatch[fast]').",
)

CHECK = click.option(
    "--check",
    "checks",
    multiple=True,
    metavar="ID,...",
    help="Opt-in checks on on-prem Exchange hosts, by id or group (all-safe, behaviour,"
    " compromise); off by default. Each check and its requests are listed below.",
)


def check_ids(values: tuple[str, ...]) -> list[str]:
    """The check ids `--check` names, in catalogue order (UsageError for a name that is
    neither a check nor a group)."""
    return list(catalogue.parse(values)) if values else []


def require_transport(name: str) -> str:
    """`--transport`'s value, refused (UsageError) when its client is not installed, so
    that nothing starts with a transport that cannot run."""
    client_class(name)
    return name


__all__ = [
    "ADD_PROBE",
    "ALLOW_PRIVATE",
    "CHECK",
    "FOLLOW_UPS",
    "PLAIN_HTTP",
    "SEED",
    "TIMEOUT",
    "TRANSPORT",
    "check_ids",
    "require_transport",
]
