"""Options `scan` and `census submit` share, spelled once so that a census is described
exactly as a scan is."""

from __future__ import annotations

import click

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

__all__ = ["ADD_PROBE", "ALLOW_PRIVATE", "FOLLOW_UPS", "PLAIN_HTTP", "SEED", "TIMEOUT"]
