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


@settings(max_examples=500, deadline=None)
@given(
    ns=st.integers(min_value=0, max_value=253402300799_999_999_999)  # to 9999-12-31
    | st.integers(min_value=1_700_000_000, max_value=1_700_000_003).map(lambda s: s * 10**9 - 1)
)
def test_record_timestamps_are_datetimes_isoformat(ns: int) -> None:
    """`timestamp_at` (the seconds' text made once per second) writes what datetime writes,
    milliseconds cut, not rounded; the `map` case crosses second boundaries, so the cached
    text of one second is never given to the next."""
    import datetime as dt

    from exwatch.scan.record import timestamp_at

    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ns // 1000)
    expected = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert timestamp_at(ns) == expected
    assert timestamp_at(ns + 1_000_000_000) != expected  # the next second is its own text


def test_writer_counts_one_line_per_record(tmp_path: Path) -> None:
    """The writer tells the file how many lines a batch holds instead of counting its bytes:
    the count stays the file's own, records with newlines in their strings included."""
    import asyncio

    from exwatch.scan.runner import Writer

    out = JsonlOutput.open(tmp_path / "scan.jsonl", append=False)

    async def main() -> None:
        writer = Writer(out, None)
        for i in range(5):
            writer.add({"ip": f"127.0.0.{i}", "error": "line one\nline two\r\n"})
        await writer.flush()

    asyncio.run(main())
    out.close()
    assert out.lines == 5
    assert (tmp_path / "scan.jsonl").read_bytes().count(b"\n") == 5
