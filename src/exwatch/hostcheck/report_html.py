"""HTML report of a host check.  Every logged string is attacker-written: Jinja2 autoescape
is on for the whole template, nothing is marked safe, and control characters (ESC, BEL,
the C1 range) are shown as `\\x1b` text before escaping, so no raw control byte reaches the
file (a terminal `cat` of the report, or a viewer, cannot be driven by them)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from exwatch.hostcheck.result import HostcheckResult

# C0 except tab/newline/carriage return, DEL, C1.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _visible(value: Any) -> Any:
    if isinstance(value, str):
        return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value)
    return value


def render_html(result: HostcheckResult) -> str:
    env = Environment(
        loader=PackageLoader("exwatch.hostcheck", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        finalize=_visible,
    )
    return env.get_template("report.html.j2").render(report=result.to_json())


def write_html(result: HostcheckResult, path: Path) -> None:
    path.write_text(render_html(result), encoding="utf-8")


__all__ = ["render_html", "write_html"]
