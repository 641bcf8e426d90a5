"""`exwatch notify`: tell each affected organisation, in its language, once; remind; track.

A dry run (the default) writes the messages as .eml files with an index for review; `--send`
hands them to an SMTP server, crash-safe.  The login comes from the environment
(EXWATCH_SMTP_USER, EXWATCH_SMTP_PASSWORD) or a file (`--smtp-login-file`), never from the
command line, where every user of the machine could read it.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import click

from exwatch.cli.enrich_cmd import db_option, enrichment_options, fill_missing, note, open_db
from exwatch.errors import UsageError
from exwatch.untrusted import plain_for_terminal

PLACEHOLDER_FROM = "CERT <cert@example.invalid>"
NOW_ENV = "EXWATCH_NOW"  # for tests and for re-creating a past run: the run's clock
USER_ENV, PASSWORD_ENV = "EXWATCH_SMTP_USER", "EXWATCH_SMTP_PASSWORD"
_DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}


def parse_now(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--now {text!r} is not an ISO 8601 time (2026-11-24T09:00:00Z)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_sender(text: str, name: str | None) -> tuple[str, str]:
    """(display name, address) from `CERT.be <cert@cert.be>` or a bare address."""
    from exwatch.notify.contacts import parse_address

    header = default_policy.header_factory("From", text)
    addresses: tuple[Address, ...] = tuple(getattr(header, "addresses", ()))
    if len(addresses) != 1:
        raise UsageError(f"--from {text!r}: give one address, e.g. 'CERT.be <cert@cert.be>'")
    found = addresses[0]
    address = parse_address(found.addr_spec)
    if address is None:
        raise UsageError(f"--from {text!r}: {found.addr_spec!r} is not an e-mail address")
    display = name or found.display_name or address.split("@", 1)[1]
    return display, address


def _address_option(value: str | None, option: str) -> str | None:
    from exwatch.notify.contacts import parse_address

    if value is None:
        return None
    address = parse_address(value)
    if address is None:
        raise UsageError(f"{option} {value!r} is not an e-mail address")
    return address


def _smtp_settings(
    host: str,
    port: int | None,
    security: str,
    login_file: str | None,
    cafile: str | None,
    timeout: float,
) -> Any:
    from exwatch.net.smtp import SmtpSettings, read_login_file

    user, password = os.environ.get(USER_ENV), os.environ.get(PASSWORD_ENV)
    if login_file is not None:
        if user or password:
            raise UsageError(
                f"give the SMTP login in {USER_ENV}/{PASSWORD_ENV} or a file, not both"
            )
        user, password = read_login_file(login_file)
    return SmtpSettings(
        host=host,
        port=port or _DEFAULT_PORTS[security],
        security=security,  # type: ignore[arg-type]
        username=user or None,
        password=password or None,
        cafile=cafile,
        timeout=timeout,
    )


@click.command("notify")
@db_option
@click.option("--scan", "scan_id", help="Scan whose findings to report (default: the latest).")
@enrichment_options
@click.option(
    "--contacts",
    type=click.Path(exists=True, dir_okay=False),
    help="CSV: match (CIDR, AS, domain), addresses, organisation, language, escalation, domain.",
)
@click.option(
    "--opt-out",
    "opt_out",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Addresses, @domains, networks or AS numbers never to write to (repeatable).",
)
@click.option(
    "--security-txt",
    is_flag=True,
    help="Ask the security.txt of the organisation's domain for hosts without a contact.",
)
@click.option(
    "--send/--dry-run",
    "send",
    default=False,
    help="Deliver through SMTP, or (the default) only write the messages for review.",
)
@click.option(
    "-o",
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    help="Folder for the messages and the index (default: notify-DATE-TIME).",
)
@click.option("--force", is_flag=True, help="Reuse a non-empty --out folder.")
@click.option(
    "--from",
    "from_",
    default=PLACEHOLDER_FROM,
    show_default=True,
    help="Sender, e.g. 'CERT.be <cert@cert.be>' (required for --send).",
)
@click.option("--reply-to", help="Where replies go (default: --from).")
@click.option("--website", help="A page about the scans, named in every message.")
@click.option("--opt-out-address", help="Where to ask not to be written to (default: reply-to).")
@click.option(
    "--scanner-address",
    multiple=True,
    help="An address the scans come from, named in the message (repeatable).",
)
@click.option(
    "--user-agent",
    help="User-Agent named in the message (default: the one the scan recorded) and sent by"
    " --security-txt.",
)
@click.option(
    "--language",
    default="en",
    show_default=True,
    help="Language for contacts without one (nl, fr, de, en, or one from --templates).",
)
@click.option(
    "--templates",
    type=click.Path(exists=True, file_okay=False),
    help="Folder overriding the message templates (LANG/{subject.txt,body.txt,body.html}.j2).",
)
@click.option(
    "--remind-after",
    type=click.IntRange(min=1),
    default=14,
    show_default=True,
    metavar="DAYS",
    help="Remind when a finding is still there this many days after the last message.",
)
@click.option(
    "--escalate-after",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    metavar="N",
    help="Escalate after N reminders.",
)
@click.option(
    "--escalate-cc",
    multiple=True,
    help="Address copied on every escalation (repeatable), beside the contacts file's own.",
)
@click.option(
    "--max-messages",
    type=click.IntRange(min=0),
    default=200,
    show_default=True,
    help="At most this many messages per run, most urgent first (0: no limit).",
)
@click.option(
    "--max-per-domain",
    type=click.IntRange(min=0),
    default=25,
    show_default=True,
    help="At most this many messages per recipient domain per run (0: no limit).",
)
@click.option(
    "--pause",
    type=click.FloatRange(min=0.0),
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    help="Wait this long between two messages sent.",
)
@click.option("--smtp-host", default="localhost", show_default=True)
@click.option(
    "--smtp-port", type=click.IntRange(1, 65535), help="Default: 587, 465 with tls, 25 with none."
)
@click.option(
    "--smtp-security",
    type=click.Choice(("starttls", "tls", "none")),
    default="starttls",
    show_default=True,
    help="none is allowed only to a relay on this machine, and never with a login.",
)
@click.option(
    "--smtp-login-file",
    type=click.Path(exists=True, dir_okay=False),
    help=f"SMTP user and password on two lines (mode 600); or {USER_ENV}/{PASSWORD_ENV}.",
)
@click.option(
    "--smtp-cafile",
    type=click.Path(exists=True, dir_okay=False),
    help="CA certificates to verify the SMTP server with (default: the system's).",
)
@click.option("--smtp-timeout", type=click.FloatRange(min=1.0), default=30.0, show_default=True)
@click.option(
    "--exclude",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Exclusion lists (ZMap format) that --security-txt fetches honour, like scans.",
)
@click.option(
    "--allow-private",
    is_flag=True,
    help="Let --security-txt fetch from private, loopback and reserved addresses.",
)
@click.option(
    "--connect-to",
    multiple=True,
    metavar="NAME=ADDRESS:PORT",
    help="Fetch NAME's security.txt from ADDRESS:PORT (split DNS, tests).",
)
@click.option(
    "--security-txt-cafile",
    type=click.Path(exists=True, dir_okay=False),
    help="CA certificates to verify security.txt sites with (default: the system's).",
)
@click.option(
    "--security-txt-max-age",
    type=click.IntRange(min=0),
    default=7,
    show_default=True,
    metavar="DAYS",
    help="Reuse a security.txt fetched less than this many days ago.",
)
@click.option(
    "--now",
    envvar=NOW_ENV,
    help=f"The run's clock (ISO 8601; also {NOW_ENV}), for tests and re-creating a past run.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run's summary as JSON.")
def notify(**kw: Any) -> int:
    """Write to the organisations whose hosts a scan found vulnerable or compromised.

    One message per contact per run, in the contact's language (nl, fr, de, en), listing its
    hosts with the CVEs (known-exploited ones marked), what to install, and how the scan saw
    them; plain text, HTML and a CSV of the hosts.  A finding is reported once; it is
    reminded after --remind-after days while later scans still show it, escalated after
    --escalate-after reminders, and its case closes when a later scan shows it fixed.
    Exchange Online and suspect (honeypot-like) hosts are never notified.  Hosts without a
    contact are listed in no-contact.csv.
    """
    from exwatch.notify.plan import Policy
    from exwatch.notify.render import Sender
    from exwatch.notify.run import Options, run
    from exwatch.notify.securitytxt import FetchPolicy, parse_connect_to
    from exwatch.scan.exclusions import Exclusions
    from exwatch.scan.host import DEFAULT_USER_AGENT

    now = parse_now(kw["now"])
    name, address = parse_sender(kw["from_"], None)
    if kw["from_"] == PLACEHOLDER_FROM:
        if kw["send"]:
            raise UsageError("--send needs --from with your CERT's name and address")
        note("warning: no --from given; the messages name CERT <cert@example.invalid>")
    escalate_cc = tuple(
        a for a in (_address_option(v, "--escalate-cc") for v in kw["escalate_cc"]) if a
    )
    sender = Sender(
        name=name,
        address=address,
        reply_to=_address_option(kw["reply_to"], "--reply-to"),
        website=kw["website"],
        opt_out=_address_option(kw["opt_out_address"], "--opt-out-address"),
        scanner_addresses=tuple(kw["scanner_address"]),
        user_agent=kw["user_agent"],  # None: the one the scan recorded
    )
    security_txt = None
    if kw["security_txt"]:
        try:
            connect_to = parse_connect_to(kw["connect_to"])
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        security_txt = FetchPolicy(
            exclusions=Exclusions.from_files(kw["exclude"]),
            allow_private=kw["allow_private"],
            user_agent=sender.user_agent or DEFAULT_USER_AGENT,
            cafile=kw["security_txt_cafile"],
            connect_to=connect_to,
        )
    elif kw["connect_to"] or kw["security_txt_cafile"]:
        raise UsageError("--connect-to and --security-txt-cafile only apply with --security-txt")
    smtp = None
    if kw["send"]:
        smtp = _smtp_settings(
            kw["smtp_host"], kw["smtp_port"], kw["smtp_security"], kw["smtp_login_file"],
            kw["smtp_cafile"], kw["smtp_timeout"],
        )  # fmt: skip
    out_dir = Path(kw["out_dir"] or f"notify-{now.strftime('%Y%m%d-%H%M%S')}")
    options = Options(
        sender=sender,
        out_dir=out_dir,
        now=now,
        scan_id=kw["scan_id"],
        contacts=kw["contacts"],
        opt_out=tuple(kw["opt_out"]),
        templates=kw["templates"],
        default_language=kw["language"],
        policy=Policy(
            remind_after=timedelta(days=kw["remind_after"]),
            escalate_after=kw["escalate_after"],
            max_messages=kw["max_messages"] or None,
            max_per_domain=kw["max_per_domain"] or None,
            escalate_cc=escalate_cc,
        ),
        security_txt=security_txt,
        security_txt_max_age=timedelta(days=kw["security_txt_max_age"]),
        smtp=smtp,
        pause=kw["pause"],
        force=kw["force"],
    )
    with open_db(kw["db_path"]) as store:
        fill_missing(store, kw["geo_db"], kw["asn_db"], kw["constituency"], kw["rdns"])
        outcome = run(store, options, note)
    summary = {
        "run_id": outcome.run_id,
        "scan_id": outcome.scan_id,
        "mode": outcome.mode,
        "out": str(outcome.out_dir),
        "hosts": outcome.hosts,
        "messages": outcome.planned,
        "kinds": dict(outcome.kinds),
        "languages": dict(outcome.languages),
        "sent": outcome.sent,
        "resent_from_earlier_runs": outcome.retried,
        "failed": outcome.failed,
        "pending": outcome.pending,
        "deferred": outcome.deferred,
        "no_contact": outcome.no_contact,
        "not_due": outcome.not_due,
        "in_flight": outcome.in_flight,
        "escalated_before": outcome.escalated,
        "cases_closed": outcome.closed,
        "exchange_online_skipped": outcome.skipped.exchange_online,
        "suspect_skipped": outcome.skipped.suspect,
        "security_txt": outcome.security_txt,
        "stopped": outcome.stopped,
    }
    if kw["as_json"]:
        click.echo(json.dumps(summary, indent=2))
    else:
        _print(summary)
    if outcome.stopped is not None:
        note(f"sending stopped: {outcome.stopped}; the next run sends what is pending")
    return 1 if (outcome.stopped or outcome.failed or outcome.pending) else 0


def _print(s: dict[str, Any]) -> None:
    def fmt(counts: dict[str, int]) -> str:
        return ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "none"

    verb = "sent" if s["mode"] == "send" else "written for review"
    lines = [
        f"scan {s['scan_id']}: {s['hosts']} hosts with findings",
        f"{s['messages']} messages {verb} ({fmt(s['kinds'])}; languages: {fmt(s['languages'])})",
    ]
    if s["mode"] == "send":
        lines.append(
            f"sent {s['sent']}, resent from an earlier run {s['resent_from_earlier_runs']},"
            f" failed {s['failed']}, still pending {s['pending']}"
        )
    lines.append(
        f"not due yet {s['not_due']} findings, in a pending message {s['in_flight']},"
        f" past escalation {s['escalated_before']}, deferred by limits {s['deferred']} messages"
    )
    lines.append(f"no contact: {s['no_contact']} hosts (see no-contact.csv)")
    if s["cases_closed"]:
        lines.append(f"cases closed by later scans: {fmt(s['cases_closed'])}")
    if s["exchange_online_skipped"] or s["suspect_skipped"]:
        lines.append(
            f"not notified: {s['exchange_online_skipped']} Exchange Online,"
            f" {s['suspect_skipped']} suspect hosts"
        )
    if s["security_txt"]:
        lines.append(f"security.txt: {fmt(s['security_txt'])}")
    lines.append(f"index: {Path(s['out']) / 'index.csv'}")
    for line in lines:
        click.echo(plain_for_terminal(line, 1000))
