"""docs/checks.md says what the data does: the shapes table, the requests, the counts."""

from __future__ import annotations

from pathlib import Path

from exwatch.checks import behaviour, catalogue, indicators

DOC = Path(__file__).resolve().parents[2] / "docs" / "checks.md"


def test_shapes_table_is_generated_from_the_data() -> None:
    text = DOC.read_text("utf-8")
    block = text.split("<!-- shapes:begin -->\n", 1)[1].split("\n<!-- shapes:end -->", 1)[0]
    assert block == indicators.shapes_table()


def test_every_check_and_request_is_documented() -> None:
    text = DOC.read_text("utf-8")
    data = indicators.load()
    assert f"each of the {len(data.paths)} paths" in text
    assert f"({len(data.folders)}: " in text
    for check_id in catalogue.check_ids():
        assert f"`{check_id}`" in text
    for check in behaviour.load().checks:
        assert check.request.path in text
        for name, value in check.request.headers:
            assert f"{name}: {value}" in text
        if check.control is not None:
            assert f"`{check.control.method} {check.control.path}`" in text


def test_readme_ethics_lists_every_check_with_its_requests() -> None:
    readme = (DOC.parents[1] / "README.md").read_text("utf-8")
    ethics = readme.split("## Ethics", 1)[1].split("\n## ", 1)[0]
    data = indicators.load()
    assert f"the {len(data.paths)} web-shell paths" in ethics
    assert f"each of {len(data.folders)} folders" in ethics
    for check in behaviour.load().checks:
        assert f"`{check.id}`" in ethics
        assert check.request.path in ethics
        for _, value in check.request.headers:
            assert value in ethics
