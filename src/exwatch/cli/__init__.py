"""The `exwatch` command group and its entry point `main`: parse arguments, call the library,
map errors to exit codes.

This module holds the group only: COMMANDS lists each subcommand once (module, attribute,
one-line help) and `LazyGroup` imports a subcommand's module (`*_cmd.py` in this package)
when it is used, so `exwatch assess` does not pay for the scanner's or the web's imports;
every subcommand gets `--config FILE`, whose TOML (default `./exwatch.toml`) supplies option
defaults through click's default_map (`config.py`; the command line still wins).

Exit codes: 0 success, 1 a runtime failure reported as data (ExwatchError) or findings,
2 usage error, 130 interrupted (Ctrl-C) or aborted; commands may return their own (scan:
128 + the signal that stopped it; hostcheck: 1 findings, 3 nothing could be read, 4 partly
read; see each `--help`).  A user never sees a traceback unless `--debug` is given.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

import exwatch.cli.config as config
from exwatch import __version__
from exwatch.cli.config import CONFIG_NAME
from exwatch.errors import ExwatchError, UsageError

# (module, attribute) of each subcommand; imported lazily so `exwatch assess` does not pay
# for the scanner's or the report's imports.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "assess": (
        "exwatch.cli.assess_cmd",
        "assess",
        "Classify Exchange builds: verdict and basis per CVE, patch lag.",
    ),
    "census": (
        "exwatch.cli.census_cmd",
        "census",
        "A census split into tasks for Celery workers on many machines, one PostgreSQL store.",
    ),
    "diff": (
        "exwatch.cli.diff_cmd",
        "diff",
        "Compare two scans: patched, still vulnerable, newly vulnerable, patch rate per group.",
    ),
    "enrich": (
        "exwatch.cli.enrich_cmd",
        "enrich",
        "Add country, AS, organisation and sector to stored results.",
    ),
    "export": (
        "exwatch.cli.export_cmd",
        "export_cmd",
        "Export a scan as Shadowserver scan_exchange CSV, JSON lines or Parquet.",
    ),
    "demo": (
        "exwatch.cli.demo_cmd",
        "demo",
        "Start the lab, scan it, store the results and print a summary.",
    ),
    "hostcheck": (
        "exwatch.cli.hostcheck_cmd",
        "hostcheck",
        "Find ProxyLogon/ProxyShell traces and web shells in a copy of a server's logs.",
    ),
    "ingest": (
        "exwatch.cli.ingest_cmd",
        "ingest",
        "Load scan results (JSON lines) from other machines or shards into the store.",
    ),
    "knowledge": (
        "exwatch.cli.knowledge_cmd",
        "knowledge",
        "Keep the build table and CVE catalogue current: diff them against a newer source.",
    ),
    "lab": (
        "exwatch.cli.lab_cmd",
        "lab",
        "Run simulated Exchange and other servers on 127.x.y.z (tests, demos, benchmarks).",
    ),
    "notify": (
        "exwatch.cli.notify_cmd",
        "notify",
        "Tell affected organisations in their language, once; remind, escalate, track fixes.",
    ),
    "report": (
        "exwatch.cli.report_cmd",
        "report",
        "Report per country/AS/sector/organisation/version/CVE, host history, trend, or HTML.",
    ),
    "scan": (
        "exwatch.cli.scan_cmd",
        "scan",
        "Find Exchange servers, read their build passively, classify and store.",
    ),
    "serve": (
        "exwatch.cli.serve_cmd",
        "serve",
        "Serve the web interface and JSON API over the store (read-only).",
    ),
    "selftest": (
        "exwatch.cli.selftest_cmd",
        "selftest",
        "Check every shipped data file against its own examples.",
    ),
    "worker": (
        "exwatch.cli.worker_cmd",
        "worker",
        "Scan census tasks from a Celery broker into the shared PostgreSQL store.",
    ),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = COMMANDS.get(cmd_name)
        if spec is None:
            return None
        module = importlib.import_module(spec[0])
        cmd = getattr(module, spec[1])
        assert isinstance(cmd, click.Command)
        if not any(p.name == "config" for p in cmd.params):
            cmd.params.append(_config_option())
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Use the short help from COMMANDS so `--help` does not import every subcommand.
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
_CONFIG_HELP = f"Defaults for options from this TOML file (default: ./{CONFIG_NAME} if present)."


def _all_option_keys(ctx: click.Context) -> tuple[set[str], set[str]]:
    """(every configurable option key of every command, the command names)."""
    group = ctx.find_root().command
    assert isinstance(group, LazyGroup)
    keys: set[str] = set()
    for name in COMMANDS:
        command = group.get_command(ctx, name)
        if command is not None:
            keys.update(config.option_keys(command))
    return keys, set(COMMANDS)


def _apply_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    """Eager: runs before the command's other options are read, so their defaults come from
    the file; an option given on the command line still wins (click's default_map)."""
    root = ctx.find_root()
    explicit = value or (root.obj or {}).get("config")
    path = config.find(explicit)
    if path is None or ctx.info_name is None:
        return
    data = config.load(path)
    keys, names = _all_option_keys(ctx)
    config.check_tables(data, names, path)
    defaults = config.default_map(data, ctx.info_name, ctx.command, keys, path)
    ctx.default_map = {**(ctx.default_map or {}), **defaults}


def _config_option() -> click.Option:
    return click.Option(
        ["--config"],
        metavar="FILE",
        is_eager=True,
        expose_value=False,
        callback=_apply_config,
        help=_CONFIG_HELP,
    )


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="exwatch")
@click.option("--debug", is_flag=True, help="Show full tracebacks for unexpected errors.")
@click.option("--config", "config_file", metavar="FILE", help=_CONFIG_HELP)
@click.pass_context
def app(ctx: click.Context, debug: bool, config_file: str | None) -> None:
    """exwatch: Exchange exposure census and compromise check.

    Nothing in exwatch exploits anything: scans use ordinary GETs a browser makes unless an
    opt-in probe is named explicitly.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    ctx.obj["config"] = config_file


def _fail(message: str, code: int) -> int:
    click.echo(f"exwatch: error: {message}", err=True)
    return code


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the process exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        result = app.main(args=args, prog_name="exwatch", standalone_mode=False)
    except click.exceptions.Abort:
        return _fail("aborted", 130)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except UsageError as exc:
        if debug:
            raise
        return _fail(str(exc), 2)
    except ExwatchError as exc:
        if debug:
            raise
        return _fail(str(exc), 1)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:
        if debug:
            raise
        return _fail(f"unexpected {type(exc).__name__}: {exc} (run with --debug for details)", 1)
    return result if isinstance(result, int) else 0


def run() -> None:
    sys.exit(main())


__all__ = ["COMMANDS", "app", "main", "run"]
