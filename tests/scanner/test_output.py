"""The scan's JSON lines are spelled as json.dumps spells them, whichever encoder wrote them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from exwatch.scan.output import JsonlOutput, record_json, record_lines


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


# Every code point (controls, DEL, C1 controls such as CSI, non-ASCII, lone surrogates),
# 64-bit and bigger integers, and floats in the range a record's durations take.
_SCALARS = (
    st.none()
    | st.booleans()
    | st.text(max_size=20)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(min_value=1e-4, max_value=1e15)
    | st.just(0.0)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=10), _VALUES, max_size=6))
def test_records_are_spelled_as_json_dumps_spells_them(record: dict[str, Any]) -> None:
    assert record_json(record) == _dumps(record)
    assert record_lines([record, record]) == (_dumps(record) + "\n").encode() * 2


def test_server_text_stays_escaped() -> None:
    """A header's escape sequences and non-ASCII reach the file as \\u escapes, as before."""
    record = {"headers": {"server": "evil\u009b2J\x1b[31m\x7f\u00e9\ud800"}, "port": 2**65}
    line = record_json(record)
    assert line.isascii()
    assert "\\u009b2J\\u001b[31m\\u007f\\u00e9\\ud800" in line
    assert json.loads(line) == record


def test_file_gets_whole_lines(tmp_path: Path) -> None:
    out = JsonlOutput.open(tmp_path / "scan.jsonl", append=False)
    try:
        records = [{"ip": "127.0.0.1", "n": i, "name": "caf\u00e9"} for i in range(3)]
        out.append(record_lines(records))
        out.append(record_json({"ip": "::1"}) + "\n")
    finally:
        out.close()
    assert out.lines == 4
    lines = (tmp_path / "scan.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [*records, {"ip": "::1"}]
