"""Making attacker-controlled strings safe to show.

Strings from scanned servers (headers, certificate names, NTLM fields) and from logs are
written by whoever controls that server or sent that request.  Before they reach a
terminal they lose control characters (escape sequences could rewrite the screen) and
rich markup; before they reach HTML they are escaped (Jinja2 autoescape or `for_html`).
"""

from __future__ import annotations

import html
import re

from rich.markup import escape as _rich_escape

# C0 and C1 controls except tab; DEL too.  Newlines become visible so one field stays one line.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def _visible(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def for_terminal(value: object, limit: int = 200) -> str:
    """One line, no control characters, no rich markup, at most `limit` characters."""
    text = "" if value is None else str(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    return _rich_escape(_CONTROL.sub(_visible, text))


def plain_for_terminal(value: object, limit: int = 200) -> str:
    """Like for_terminal, for output that is not rendered by rich (plain click.echo)."""
    text = "" if value is None else str(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    return _CONTROL.sub(_visible, text)


def for_html(value: object) -> str:
    """HTML-escaped text, quotes included (safe in element content and attribute values)."""
    return html.escape("" if value is None else str(value), quote=True)


__all__ = ["for_html", "for_terminal", "plain_for_terminal"]
