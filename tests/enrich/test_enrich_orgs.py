from __future__ import annotations

from typing import Any

import pytest

from exwatch.enrich.orgs import (
    MAX_SANS,
    evidence_from_record,
    is_shared_certificate,
    normalise_hostname,
    organisation_from_subject,
    registered_domain,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Mail.Example.BE.", "mail.example.be"),
        ("*.example.nl", "example.nl"),
        ("DNS:owa.example.org", "owa.example.org"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("EXCH01", None),  # NetBIOS name, no domain
        ("localhost", None),
        ("192.0.2.10", None),
        ("2001:db8::1", None),
        ("Microsoft Exchange Server Auth Certificate", None),
        ("mail.example.com\x1b[31m", None),
        ("-bad.example", None),
        ("a..b.example", None),
        ("x" * 64 + ".example", None),
        ("", None),
    ],
)
def test_normalise_hostname(raw: str, expected: str | None) -> None:
    assert normalise_hostname(raw) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mail.contoso.gov.uk", "contoso.gov.uk"),
        ("mail.example.co.uk", "example.co.uk"),
        ("autodiscover.interieur.gouv.fr", "interieur.gouv.fr"),
        ("mail.health.fgov.be", "fgov.be"),
        ("dc1.corp.contoso.local", "contoso.local"),
        ("gov.uk", None),
    ],
)
def test_registered_domain(name: str, expected: str | None) -> None:
    assert registered_domain(name) == expected


def record(**parts: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"ip": "192.0.2.10", "hostname": None, "tls": None, "ntlm": None}
    base.update(parts)
    return base


def test_evidence_from_certificate_ntlm_and_hostname() -> None:
    rec = record(
        hostname="webmail.example.nl",
        tls={
            "subject_cn": "mail.example.nl",
            "san": ["mail.example.nl", "autodiscover.example.nl", "EXCH01", "192.0.2.10"],
            "subject": "CN=mail.example.nl,O=Gemeente Voorbeeld,C=NL",
        },
        ntlm={
            "dns_domain": "corp.example.local",
            "dns_tree": "example.local",
            "netbios_domain": "CORP",
        },
    )
    ev = evidence_from_record(rec)
    assert [(e.kind, e.value, e.registered_domain) for e in ev] == [
        ("cert_cn", "mail.example.nl", "example.nl"),
        ("cert_san", "autodiscover.example.nl", "example.nl"),
        ("ntlm_dns_domain", "corp.example.local", "example.local"),
        ("ntlm_dns_domain", "example.local", "example.local"),
        ("hostname", "webmail.example.nl", "example.nl"),
        ("cert_org", "Gemeente Voorbeeld", None),
    ]
    assert [e.field for e in ev][:4] == [
        "tls.subject_cn",
        "tls.san",
        "ntlm.dns_domain",
        "ntlm.dns_tree",
    ]


@pytest.mark.parametrize(
    "rec",
    [
        record(tls="not a mapping", ntlm=[1, 2]),
        record(tls={"subject_cn": 7, "san": "mail.example.nl", "subject": None}),
        record(tls={"san": [None, 3, {"x": 1}]}, ntlm={"dns_domain": None}),
        {},
    ],
)
def test_hostile_shapes_give_no_evidence(rec: dict[str, Any]) -> None:
    assert evidence_from_record(rec) == []


def test_san_list_is_capped_and_shared_certificate_detected() -> None:
    sans = [f"mail.tenant{i}.example" for i in range(MAX_SANS + 20)]
    ev = evidence_from_record(record(tls={"san": sans}))
    assert len(ev) == MAX_SANS
    assert is_shared_certificate(ev)
    assert not is_shared_certificate(ev[:3])


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("CN=mail.example.be,O=Ville de Namur,C=BE", "Ville de Namur"),
        ("/C=DE/O=Stadt Köln/CN=mail.stadt-koeln.de", "Stadt Köln"),
        (r"CN=x,O=Example\, Inc.,C=US", "Example, Inc."),
        ({"O": "Hôpital Exemple"}, "Hôpital Exemple"),
        ({"organizationName": ["Politie"]}, "Politie"),
        ("CN=only", None),
        (None, None),
    ],
)
def test_organisation_from_subject(subject: object, expected: str | None) -> None:
    assert organisation_from_subject(subject) == expected
