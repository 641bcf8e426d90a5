"""HTML report of a host check.  Every logged string is attacker-written: Jinja2 autoescape
is on for the whole template and nothing is marked safe."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from exwatch.hostcheck.findings import HostcheckResult


def render_html(result: HostcheckResult) -> str:
    env = Environment(
        loader=PackageLoader("exwatch.hostcheck", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
    )
    return env.get_template("report.html.j2").render(report=result.to_json())


def write_html(result: HostcheckResult, path: Path) -> None:
    path.write_text(render_html(result), encoding="utf-8")


__all__ = ["render_html", "write_html"]
