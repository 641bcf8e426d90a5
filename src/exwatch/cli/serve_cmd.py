"""`exwatch serve`: the web interface and JSON API over a store (read-only)."""

from __future__ import annotations

import ipaddress
import logging
import sys

import click

from exwatch.errors import UsageError
from exwatch.store import DEFAULT_PATH


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@click.command("serve")
@click.option(
    "--db",
    "db_path",
    default=DEFAULT_PATH,
    show_default=True,
    help="Store: a DuckDB file or postgresql://user@host/database.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Anything but loopback requires --credentials.",
)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--credentials",
    "credentials_path",
    type=click.Path(dir_okay=False),
    help="File of NAME:scrypt$... lines (users; 'token' for bearer tokens);"
    " also read from $EXWATCH_WEB_CREDENTIALS.",
)
@click.option(
    "--allowed-host",
    "allowed",
    multiple=True,
    help="Host name browsers use to reach the server (repeatable); loopback"
    " names are always allowed.",
)
@click.option(
    "--hash-secret",
    is_flag=True,
    help="Read a password or token on stdin, print its NAME:hash line, and exit.",
)
@click.option(
    "--name",
    default="token",
    show_default=True,
    help="With --hash-secret: the user name ('token' for a bearer token).",
)
@click.option("--access-log/--no-access-log", default=True, show_default=True)
def serve(
    db_path: str,
    host: str,
    port: int,
    credentials_path: str | None,
    allowed: tuple[str, ...],
    hash_secret: bool,
    name: str,
    access_log: bool,
) -> int:
    """Serve the web interface and JSON API over the store (read-only).

    Bound to 127.0.0.1 by default.  Any other address needs credentials: users (HTTP
    Basic) and bearer tokens, stored hashed (make a line with --hash-secret).  Put a TLS
    reverse proxy in front of it for use beyond this machine.
    """
    from exwatch.web.auth import Credentials
    from exwatch.web.auth import hash_secret as make_hash

    if hash_secret:
        if ":" in name or not name:
            raise UsageError("--name cannot be empty or hold ':'")
        secret = sys.stdin.readline().rstrip("\r\n")
        if len(secret) < 12:
            raise UsageError("the secret should be at least 12 characters")
        click.echo(f"{name}:{make_hash(secret)}")
        return 0
    credentials = Credentials.load(credentials_path)
    if not is_loopback(host) and not credentials:
        raise UsageError(
            f"--host {host} is reachable from other machines: give --credentials FILE (or"
            " $EXWATCH_WEB_CREDENTIALS) with at least one user or token; make a line with"
            " `exwatch serve --hash-secret`"
        )
    import uvicorn

    from exwatch.web import create_app, warm
    from exwatch.web.security import allowed_hosts

    # With credentials, a rebinding page gets nothing without them: the Host check is
    # needed (and applied) only for an open server, or when names were given.
    hosts = allowed_hosts(host, port, allowed) if (not credentials or allowed) else []
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    click.echo(f"exwatch serve: preparing {db_path} (enrichment, indexes, counts) ...", err=True)
    warm(db_path, lambda text: click.echo(f"exwatch serve: {text}", err=True))
    app = create_app(db_path, credentials=credentials, hosts=hosts)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"exwatch serve: http://{shown}:{port}/ (store {db_path}; Ctrl-C stops)", err=True)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        access_log=access_log,
        server_header=False,
        proxy_headers=False,
    )
    return 0
