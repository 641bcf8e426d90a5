"""Verdict rules beyond "build >= fixed build": configuration-dependent fixes, sourced
not-affected products, and the reserved `mitigated` state."""

from __future__ import annotations

import pytest

from exwatch.assess import assess
from exwatch.knowledge.catalogue import default
from exwatch.model import Verdict

P, V, U, N = Verdict.PATCHED, Verdict.VULNERABLE, Verdict.UNDETERMINED, Verdict.NOT_AFFECTED


@pytest.mark.parametrize(
    ("cve", "build", "want", "words"),
    [
        # Extended Protection: on by default from 2019 CU14 and in SE [hc-extended-protection]
        ("CVE-2022-21979", "15.2.1544.4", P, "by default"),
        ("CVE-2022-21979", "15.2.2562.17", P, "by default"),
        ("CVE-2022-21979", "15.2.1118.15", U, "Extended Protection"),
        ("CVE-2022-21979", "15.2.1118.12", V, "cannot be in place"),
        ("CVE-2022-21979", "15.0.1497.42", U, "Extended Protection"),
        ("CVE-2024-21410", "15.1.2507.12", U, "Extended Protection"),
        ("CVE-2024-21410", "15.1.2507.9", V, "cannot be in place"),
        # AD schema: the schema may have been updated from any server, so no build is
        # certainly vulnerable; CUs that update it in setup are patched [hc-ad-schema]
        ("CVE-2021-34470", "15.1.2308.8", P, "by default"),
        ("CVE-2021-34470", "15.1.2242.4", U, "schema"),
        ("CVE-2021-34470", "15.0.1497.15", U, "schema"),
        # PrepareAllDomains after the update [hc-domain-prep]
        ("CVE-2022-21978", "15.2.1118.9", U, "PrepareAllDomains"),
        ("CVE-2022-21978", "15.2.1118.7", V, "cannot be in place"),
        ("CVE-2022-21978", "15.2.1544.4", U, "shipped with the fix"),
        # Download Domains must be configured [hc-download-domains]
        ("CVE-2021-1730", "15.1.2106.8", U, "Download Domains"),
        ("CVE-2021-1730", "15.1.2106.2", V, "cannot be in place"),
        # Hybrid only: never certainly vulnerable, the reason says where it is
        ("CVE-2025-53786", "15.2.1748.10", U, "vulnerable where used in hybrid deployments"),
        ("CVE-2025-53786", "15.2.1748.24", U, "hybrid application"),
        ("CVE-2025-53786", "15.2.2562.17", U, "shipped with the fix"),
    ],
)
def test_configuration_dependent_fix(cve: str, build: str, want: Verdict, words: str) -> None:
    got = assess(build).cves[cve]
    assert got.verdict is want, got
    assert words in got.reason, got.reason
    config = default().cve(cve).config
    assert config is not None
    if want is U and "fixed in" in got.basis:
        assert f"+ {config.name}" in got.basis


@pytest.mark.parametrize("cve", ["CVE-2021-34473", "CVE-2021-34523", "CVE-2021-31207"])
def test_proxyshell_on_exchange_2010_is_not_affected_with_its_source(cve: str) -> None:
    got = assess("14.3.513.0").cves[cve]
    assert got.verdict is N
    assert got.basis == "not affected [cfc-proxyshell]"
    ref = default().source_ref("cfc-proxyshell", cve)
    assert ref.startswith("http") or "/" in ref


def test_microsoft_lists_no_build_of_a_supported_line() -> None:
    # CVE-2021-33768 (July 2021) lists 2016 and 2019 only; 2013 was supported then.
    got = assess("15.0.1497.23").cves["CVE-2021-33768"]
    assert got.verdict is N
    assert got.basis == "not affected [msrc-affected]"


def test_out_of_support_line_is_not_guessed() -> None:
    # Exchange 2010 ended in October 2020; Microsoft did not assess it for 2022 CVEs.
    got = assess("14.3.513.0").cves["CVE-2022-41040"]
    assert got.verdict is U
    assert "out of support" in got.reason


def test_every_basis_source_resolves() -> None:
    cat = default()
    for build in ("15.1.2176.9", "15.2.1544.4", "14.3.496.0", "15.2.2562.17", "15.0.847.64"):
        for cve, res in assess(build).cves.items():
            if res.basis.endswith("]"):
                sid = res.basis.rsplit("[", 1)[1].rstrip("]")
                assert sid in cat.sources, (build, cve, res.basis)


def test_mitigated_is_reserved_and_never_produced() -> None:
    assert Verdict("mitigated") is Verdict.MITIGATED
    seen = {r.verdict for row in default().rows for r in assess(row.build).cves.values()}
    assert Verdict.MITIGATED not in seen
    assert seen == {P, V, U, N}
