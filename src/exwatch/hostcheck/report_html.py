"""HTML report of a host check.  Every logged string is attacker-written: Jinja2 autoescape
is on for the whole template, nothing is marked safe, and control and direction characters
(ESC, BEL, the C1 range, bidi overrides) are shown as `\\x1b` text before escaping, so no
raw control byte reaches the file (a terminal `cat` of the report, or a viewer, cannot be
driven by them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from exwatch.hostcheck.result import HostcheckResult
from exwatch.untrusted import visible


def _visible(value: Any) -> Any:
    # Log lines keep their layout (tab, CR, LF); every other control or direction
    # character is written out, as everywhere (untrusted.visible).
    return visible(value, "\t\n\r") if isinstance(value, str) else value


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
