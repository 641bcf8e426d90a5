"""Making attacker-controlled strings safe to show.

Strings from scanned servers (headers, certificate names, NTLM fields) and from logs are
written by whoever controls that server or sent that request.  Wherever they are shown
(terminal, mail, web page, HTML report) their control and direction characters are written
out as text by `visible`, one rule for every medium; before they reach a terminal they also
lose rich markup, before they reach HTML they are escaped (Jinja2 autoescape or `for_html`).
"""

from __future__ import annotations

import html
import re

from rich.markup import escape as _rich_escape

# What a server or a log can put in a string that a terminal, a mail client or a browser
# acts on instead of showing: the C0 and C1 controls and DEL (escape sequences, line
# breaks, header injection), and the bidirectional embeddings, overrides and isolates with
# the marks and separators that steer them ("Trojan Source": text that reads otherwise than
# it is).  Every medium makes them visible the same way, `\x1b` below U+0100 and `\u202e`
# above; a medium only chooses which layout characters it keeps (tab, newline).
CONTROLS = "\x00-\x1f\x7f-\x9f"
BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029"
_patterns: dict[str, re.Pattern[str]] = {}


def shown(code: int) -> str:
    """The visible text of one control or direction character."""
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _shown(match: re.Match[str]) -> str:
    return shown(ord(match.group()))


def visible(value: object, keep: str = "") -> str:
    """`value` as text with every control and direction character written out (`\\x1b`,
    `\\u202e`) except the layout characters in `keep` ("\\t", "\\t\\n"...)."""
    text = "" if value is None else str(value)
    pattern = _patterns.get(keep)
    if pattern is None:
        kept = "".join(re.escape(c) for c in keep)
        pattern = re.compile(f"(?![{kept}])[{CONTROLS}{BIDI}]" if keep else f"[{CONTROLS}{BIDI}]")
        _patterns[keep] = pattern
    return pattern.sub(_shown, text)


def for_terminal(value: object, limit: int = 200) -> str:
    """One line, no control or direction characters, no rich markup, at most `limit`
    characters (tabs kept)."""
    text = "" if value is None else str(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    return _rich_escape(visible(text, "\t"))


def plain_for_terminal(value: object, limit: int = 200) -> str:
    """Like for_terminal, for output that is not rendered by rich (plain click.echo)."""
    text = "" if value is None else str(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    return visible(text, "\t")


def for_html(value: object) -> str:
    """HTML-escaped text, quotes included (safe in element content and attribute values)."""
    return html.escape("" if value is None else str(value), quote=True)


__all__ = ["BIDI", "CONTROLS", "for_html", "for_terminal", "plain_for_terminal", "shown", "visible"]
