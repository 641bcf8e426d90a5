"""One rule for attacker-controlled strings in every medium (src/exwatch/untrusted.py).

Terminal output, mail text, web pages and the host-check HTML report each write a server's
or a log's control and direction characters out as the same visible text (`\\x1b`,
`\\u202e`); a medium only keeps the layout characters it shows as such.  The host-check
JSON report escapes the same direction characters as JSON escapes (lossless).
"""

from __future__ import annotations

import json

import pytest

from exwatch.hostcheck.result import _JSON_RAW_CONTROLS
from exwatch.notify.escaping import text_value
from exwatch.untrusted import BIDI, CONTROLS, for_terminal, plain_for_terminal, visible
from exwatch.web.app import visible as web_visible

HOSTILE = "a\x00b\x07c\x1b[2J\td\ne\rf\x7fg\x85h\x9bi\u202ej\u2066k\u061cl\u2028m\u200fn"
SHOWN = {
    "\x00": "\\x00",
    "\x07": "\\x07",
    "\x1b": "\\x1b",
    "\t": "\\x09",
    "\n": "\\x0a",
    "\r": "\\x0d",
    "\x7f": "\\x7f",
    "\x85": "\\x85",
    "\x9b": "\\x9b",
    "\u202e": "\\u202e",
    "\u2066": "\\u2066",
    "\u061c": "\\u061c",
    "\u2028": "\\u2028",
    "\u200f": "\\u200f",
}


def expected(keep: str) -> str:
    return "".join(SHOWN.get(c, c) if c not in keep else c for c in HOSTILE)


@pytest.mark.parametrize(
    ("medium", "render", "keep"),
    [
        ("terminal (rich)", for_terminal, "\t"),
        ("terminal (plain)", plain_for_terminal, "\t"),
        ("mail text", text_value, ""),
        ("web page", web_visible, "\t\n"),
    ],
)
def test_every_medium_writes_the_same_characters_out_the_same_way(
    medium: str, render: object, keep: str
) -> None:
    assert callable(render)
    assert render(HOSTILE) == expected(keep), medium


def test_the_host_check_html_report_keeps_log_layout_only() -> None:
    from exwatch.hostcheck.report_html import _visible

    assert _visible(HOSTILE) == expected("\t\n\r")
    assert _visible(42) == 42


def test_every_control_and_direction_character_is_covered() -> None:
    import re

    covered = re.compile(f"[{CONTROLS}{BIDI}]")
    for code in [*range(0x00, 0x20), *range(0x7F, 0xA0), 0x061C, 0x200E, 0x200F]:
        assert covered.fullmatch(chr(code))
    for code in [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029]:
        assert covered.fullmatch(chr(code))
    for ordinary in ("a", " ", "é", "\u00a0", "€", "中"):
        assert visible(ordinary) == ordinary


def test_json_report_escapes_direction_characters_losslessly() -> None:
    text = json.dumps({"evidence": HOSTILE}, ensure_ascii=False)
    safe = _JSON_RAW_CONTROLS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    for raw in ("\x7f", "\x85", "\x9b", "\u202e", "\u2066", "\u061c", "\u2028", "\u200f"):
        assert raw not in safe
    assert json.loads(safe) == {"evidence": HOSTILE}
