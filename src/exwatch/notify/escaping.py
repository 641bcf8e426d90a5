"""Making server-supplied strings safe in a mail: header values, plain text, HTML.

A notification quotes what servers said about themselves (hostnames, certificate names,
NTLM names, web-shell evidence) and names from files the CERT keeps.  Any of it may carry
CR/LF (header injection), terminal escape sequences (a plain-text mail read in a terminal
client), bidirectional-override characters (text that reads differently than it is) or
sheer length.  Values pass through here before they reach a template or a header; the HTML
templates escape on top (Jinja2 autoescape), the CSV attachment neutralises formulas on top
(the report layer's `neutralise`).
"""

from __future__ import annotations

import re
from typing import Any

from exwatch.untrusted import BIDI, CONTROLS, visible

# Controls become spaces and direction characters vanish in a header (untrusted.py says
# which characters those are, for every medium).
_CONTROL = re.compile(f"[{CONTROLS}]")
_BIDI = re.compile(f"[{BIDI}]")
_SPACES = re.compile(r"\s+")

# Longest server value quoted in a message (a certificate name can be kilobytes).
MAX_VALUE = 200


def text_value(value: object, limit: int = MAX_VALUE) -> str:
    """One line of text: controls and bidi marks made visible (\\x1b, \\u202e), tab and
    line breaks too, cut at `limit` characters.  Used for every value a template prints."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    return visible(text)


def header_value(value: object, limit: int = 300) -> str:
    """A header value (Subject, display names): one line, no controls, spaces collapsed.

    CR and LF become spaces, never line breaks, so no value can start a header of its own;
    the email package then encodes non-ASCII text (RFC 2047) and folds long lines itself."""
    text = "" if value is None else str(value)
    text = _SPACES.sub(" ", _CONTROL.sub(" ", text))
    text = _BIDI.sub("", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def finalize(value: Any) -> Any:
    """Jinja2 `finalize` for both environments: every printed expression is made safe.

    Markup (already-escaped HTML we built) passes unchanged; numbers print as they are."""
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return value
    if hasattr(value, "__html__"):
        return value
    return text_value(value)


__all__ = ["MAX_VALUE", "finalize", "header_value", "text_value"]
