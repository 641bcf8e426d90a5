"""docs/fingerprinting.md's technique table is the `techniques` section of fingerprints.yaml,
and every technique names entries, tools and lab profiles that exist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exwatch.fingerprint import ENTRIES, PATTERNS, data_document
from exwatch.lab.plan import EXCHANGE_PROFILES, SUSPECT_PROFILES, WEB_PROFILES

DOC = Path(__file__).resolve().parents[2] / "docs" / "fingerprinting.md"
BEGIN, END = "<!-- techniques:begin -->", "<!-- techniques:end -->"
LAB_PROFILES = set(EXCHANGE_PROFILES) | set(SUSPECT_PROFILES) | set(WEB_PROFILES)
LAB_PROFILES.add("exchange-online")


def techniques() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = data_document()["techniques"]
    return found


def render() -> str:
    """The table as docs/fingerprinting.md must show it."""
    rows = [
        "| technique | requests | reads | public tools | lab profiles |",
        "|---|---|---|---|---|",
    ]
    for t in techniques():
        cells = [
            f"**{t['title']}** (`{t['id']}`)",
            "<br>".join(f"`{r}`" for r in t["requests"]),
            t["reads"],
            "; ".join(t["tools"]),
            ", ".join(f"`{p}`" for p in t["lab_profiles"]),
        ]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)


def test_every_technique_names_what_exists() -> None:
    ids = {e.id for e in ENTRIES} | {p.id for p in PATTERNS}
    seen: set[str] = set()
    for t in techniques():
        assert {"id", "title", "requests", "reads", "entries", "tools", "lab_profiles"} <= set(t)
        assert t["id"] not in seen
        seen.add(t["id"])
        assert set(t["entries"]) <= ids, t["id"]
        assert t["tools"], t["id"]
        assert set(t["lab_profiles"]) <= LAB_PROFILES, t["id"]


def test_every_entry_and_pattern_belongs_to_a_technique() -> None:
    named = {i for t in techniques() for i in t["entries"]}
    assert {e.id for e in ENTRIES} | {p.id for p in PATTERNS} <= named


def test_docs_table_is_the_data() -> None:
    text = DOC.read_text("utf-8")
    assert BEGIN in text
    assert END in text
    table = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert table == render(), "regenerate the table:\n" + render()
