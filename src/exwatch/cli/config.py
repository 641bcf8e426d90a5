"""The configuration file: the options every command repeats, written once.

`exwatch.toml` in the working directory, or the file named by `--config FILE` (before or
after the command name), gives defaults for command-line options; an option given on the
command line always wins.  Keys are option names without the dashes (`db`, `geo-db` or
`geo_db`, `exclude`, `user-agent`).  A key at the top level applies to every command that
has that option; a key in a `[scan]`, `[report]`, ... table applies to that command only.
A key that no command (or not that command) has is an error naming it, so a typo is never
silently ignored.  Relative paths for file options are relative to the file's folder.

    db = "census.duckdb"
    exclude = ["blocklist.txt"]
    geo-db = "/usr/share/GeoIP/GeoLite2-Country.mmdb"
    constituency = "be-constituency.csv"
    user-agent = "CERT-XX census (https://cert.xx/scan; scan@cert.xx)"

    [scan]
    rate = 2000

Implemented once, for every command: the group adds an eager `--config` option to each
command it loads, whose callback fills click's `default_map` before the other options are
read.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import click

from exwatch.errors import UsageError

CONFIG_NAME = "exwatch.toml"
# Options whose values are file paths: relative ones are read from the config file's folder.
PATH_KEYS = frozenset({"db", "geo_db", "asn_db", "constituency", "exclude", "list"})
_NOT_CONFIGURABLE = frozenset({"help", "config", "version"})


def _key(text: str) -> str:
    return text.strip().lstrip("-").replace("-", "_").lower()


def option_keys(command: click.Command) -> dict[str, click.Option]:
    """Config key -> option, from each option's long names (`--geo-db` -> `geo_db`)."""
    keys: dict[str, click.Option] = {}
    for param in command.params:
        if not isinstance(param, click.Option):
            continue
        for opt in (*param.opts, *param.secondary_opts):
            if opt.startswith("--"):
                key = _key(opt)
                if key not in _NOT_CONFIGURABLE:
                    keys.setdefault(key, param)
    return keys


def load(path: Path) -> dict[str, Any]:
    """The parsed file; UsageError naming the file and the problem."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file {path}: {exc}") from None
    return data


def _value(key: str, option: click.Option, value: Any, base: Path, where: str) -> Any:
    if option.multiple and not isinstance(value, list):
        value = [value]
    elif not option.multiple and isinstance(value, list):
        # `port = [443, 8443]` means --port 443,8443; other single-valued options refuse a list
        if key != "port":
            raise UsageError(f"{where}: {key!r} takes one value, not a list")
        value = ",".join(str(v) for v in value)
    if key in PATH_KEYS:
        if isinstance(value, list):
            value = [str(base / v) if isinstance(v, str) else v for v in value]
        elif isinstance(value, str):
            value = str(base / value)
    if isinstance(value, dict):
        raise UsageError(f"{where}: {key!r} must be a value, not a table")
    return value


def default_map(
    data: dict[str, Any], command_name: str, command: click.Command, all_keys: set[str], path: Path
) -> dict[str, Any]:
    """click's default_map for one command from a parsed config file.

    `all_keys` are the option keys of every command (a top-level key must belong to one).
    """
    base = path.parent
    keys = option_keys(command)
    out: dict[str, Any] = {}
    for raw, value in data.items():
        if isinstance(value, dict):
            continue  # a command table, below
        key = _key(raw)
        if key not in all_keys:
            raise UsageError(f"config file {path}: unknown key {raw!r} (no command has --{raw})")
        if key in keys:
            option = keys[key]
            out[option.name or key] = _value(key, option, value, base, str(path))
    table = data.get(command_name)
    if isinstance(table, dict):
        for raw, value in table.items():
            key = _key(raw)
            if key not in keys:
                raise UsageError(
                    f"config file {path}: unknown key {raw!r} in [{command_name}]"
                    f" (exwatch {command_name} has no --{raw})"
                )
            option = keys[key]
            out[option.name or key] = _value(key, option, value, base, f"{path} [{command_name}]")
    return out


def check_tables(data: dict[str, Any], commands: set[str], path: Path) -> None:
    for name, value in data.items():
        if isinstance(value, dict) and name not in commands:
            raise UsageError(f"config file {path}: unknown table [{name}] (no such command)")


def find(explicit: str | None) -> Path | None:
    """The config file to use: the one given, else ./exwatch.toml when present."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise UsageError(f"config file not found: {explicit}")
        return path
    local = Path.cwd() / CONFIG_NAME
    return local if local.is_file() else None


__all__ = ["CONFIG_NAME", "check_tables", "default_map", "find", "load", "option_keys"]
