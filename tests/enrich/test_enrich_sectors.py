from __future__ import annotations

from pathlib import Path

import pytest

from exwatch.enrich.orgs import Evidence
from exwatch.enrich.sectors import SectorRules, default_rules, example_evidence, selftest
from exwatch.errors import DataError
from exwatch.selftest import CHECKS, run_all


def test_shipped_rules_pass_their_selftest() -> None:
    result = selftest()
    assert result.problems == []
    assert result.examples > 100
    assert result.ok


def test_selftest_is_registered() -> None:
    assert "exwatch.enrich.sectors:selftest" in CHECKS
    names = [r.name for r in run_all()]
    assert "enrich/sector_rules.yaml" in names


def test_vocabulary() -> None:
    sectors = default_rules().sectors
    for sector in (
        "public-administration",
        "municipality",
        "province",
        "police",
        "health",
        "education",
        "energy",
        "transport",
        "water",
        "finance",
        "digital-infrastructure",
        "other",
        "unknown",
    ):
        assert sector in sectors
    assert sectors["police"].parent == "public-administration"


@pytest.mark.parametrize(
    ("text", "sector"),
    [
        # nl
        ("mail.politie.nl", "police"),
        ("owa.gemeentedenhaag.nl", "municipality"),
        ("mail.provincie-gelderland.nl", "province"),
        ("mail.antonius-ziekenhuis.nl", "health"),
        ("mail.hogeschool-gent.be", "education"),
        ("exchange.universiteitgent.be", "education"),
        ("mail.rijksoverheid.nl", "public-administration"),
        ("Gemeente Amsterdam", "municipality"),
        # fr
        ("mail.police.be", "police"),
        ("owa.commune-de-uccle.be", "municipality"),
        ("Hôpital de la Citadelle", "health"),
        ("Université catholique de Louvain", "education"),
        ("mail.interieur.gouv.fr", "public-administration"),
        # de
        ("mail.polizei.nrw.de", "police"),
        ("Gemeinde Wiesloch", "municipality"),
        ("mail.krankenhaus-nord.de", "health"),
        ("mail.uni-heidelberg.de", "education"),
        ("mail.bsi.bund.de", "public-administration"),
        ("Landkreis Harburg", "province"),
        # en
        ("mail.northumbria.police.uk", "police"),
        ("mail.royal-hospital.example", "health"),
        ("mail.ox.ac.uk", "education"),
        ("mail.ncsc.gov.uk", "public-administration"),
        ("owa.fgov.be", "public-administration"),
        ("mail.belgium.be", "public-administration"),
    ],
)
def test_keyword_rules_per_language(text: str, sector: str) -> None:
    found = default_rules().match([example_evidence(text)])
    assert found is not None
    assert found.rule.sector == sector


@pytest.mark.parametrize(
    "text",
    ["mail.example.com", "mail.communication.example", "Acme Policy Services", "mail.unicorn.nl"],
)
def test_no_rule_for_neutral_names(text: str) -> None:
    assert default_rules().match([example_evidence(text)]) is None


def test_first_rule_wins_across_evidence() -> None:
    rules = default_rules()
    weak = Evidence("cert_cn", "mail.rabobank.example", "rabobank.example", "tls.subject_cn")
    strong = Evidence("cert_san", "owa.politie.nl", "politie.nl", "tls.san")
    found = rules.match([weak, strong])
    assert found is not None
    assert found.rule.id == "police-domain-suffix"
    assert found.evidence is strong


RULE = """
version: 1
sectors:
  police: {description: Police}
  other: {description: Other}
  unknown: {description: Unknown}
rules:
  - id: police-keyword
    sector: police
    kind: keyword
    confidence: medium
    languages: [nl]
    values: [politie]
    examples:
      match: [mail.politie.example]
      no_match: [MATCH_ME]
"""


def test_selftest_reports_wrong_examples(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULE.replace("MATCH_ME", "politie.example"))
    result = selftest(path)
    assert not result.ok
    assert result.problems == ["police-keyword: counter-example 'politie.example' matches"]
    path.write_text(
        RULE.replace("MATCH_ME", "mail.example").replace(
            "match: [mail.politie.example]", "match: [mail.example.org]"
        )
    )
    assert selftest(path).problems == ["police-keyword: example 'mail.example.org' does not match"]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (("sector: police", "sector: polis"), "not in the vocabulary"),
        (("kind: keyword", "kind: regex"), "kind must be one of"),
        (("confidence: medium", "confidence: certain"), "confidence must be one of"),
        (("values: [politie]", "values: [po litie]"), "letters/digits"),
        (("values: [politie]", "values: []"), "values must be a non-empty list"),
        (("      no_match: [mail.example]\n", ""), "examples.no_match"),
        (("id: police-keyword", "id: Police Keyword"), "not kebab-case"),
        (("  unknown: {description: Unknown}\n", ""), "must contain 'unknown'"),
        (("languages: [nl]", "languages: [dutch]"), "ISO 639"),
    ],
)
def test_malformed_rules_file(tmp_path: Path, change: tuple[str, str], words: str) -> None:
    path = tmp_path / "rules.yaml"
    text = RULE.replace("MATCH_ME", "mail.example")
    assert change[0] in text
    path.write_text(text.replace(*change))
    with pytest.raises(DataError, match=words):
        SectorRules.load(path)
    assert not selftest(path).ok


def test_rules_file_that_is_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules: [unclosed")
    with pytest.raises(DataError, match="not valid YAML"):
        SectorRules.load(path)
