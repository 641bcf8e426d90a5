"""The DER reader renders certificate fields exactly as cryptography does, or declines.

`net/der.py` reads names and SAN from the encoding for speed; wherever it answers, its
answer must be cryptography's own text (RFC 4514 names, SAN entries as `net/tls._san` lists
them).  Generated certificates cover the name and SAN shapes servers use and the ones the
reader must leave to cryptography; mutated encodings cover what a hostile server can send.
"""

from __future__ import annotations

import datetime
import ipaddress
import random

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtensionOID, NameOID, ObjectIdentifier
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exwatch.net import der as reader
from exwatch.net.tls import _MAX_NAME_CHARS, _MAX_SAN, _san, certificate_fields

_KEY = ec.generate_private_key(ec.SECP256R1())
_OIDS = [
    NameOID.COMMON_NAME,
    NameOID.ORGANIZATION_NAME,
    NameOID.ORGANIZATIONAL_UNIT_NAME,
    NameOID.LOCALITY_NAME,
    NameOID.STATE_OR_PROVINCE_NAME,
    NameOID.COUNTRY_NAME,
    NameOID.STREET_ADDRESS,
    NameOID.DOMAIN_COMPONENT,
    NameOID.USER_ID,
    NameOID.EMAIL_ADDRESS,  # written dotted by cryptography
    NameOID.SERIAL_NUMBER,
    NameOID.JURISDICTION_COUNTRY_NAME,  # 1.3.6.1.4.1.311.60.2.1.3: long arcs
    ObjectIdentifier("2.999.1"),
]
_SIMPLE_TYPES = [_ASN1Type.UTF8String, _ASN1Type.PrintableString, _ASN1Type.IA5String]
_OTHER_TYPES = [_ASN1Type.BMPString, _ASN1Type.T61String, _ASN1Type.UniversalString]
# Values with every character RFC 4514 escapes, leading/trailing spaces and '#'.
_VALUES = st.text(
    alphabet=st.sampled_from(list('abcXYZ019 .-#\\"+,;<>=\0é')), min_size=0, max_size=12
)


def _names(cert: x509.Certificate) -> tuple[str | None, str, str]:
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = None
    if cns:
        value = cns[0].value
        cn = (value if isinstance(value, str) else value.decode("latin-1"))[:_MAX_NAME_CHARS]
    subject = cert.subject.rfc4514_string()[:_MAX_NAME_CHARS]
    return cn, subject, cert.issuer.rfc4514_string()[:_MAX_NAME_CHARS]


def _san_alone(der: bytes) -> list[str] | None:
    """cryptography's reading of the SAN extension alone (found by its OID's encoding), in a
    certificate of its own: another extension that cryptography refuses does not hide it."""
    at = der.find(b"\x06\x03\x55\x1d\x11")
    if at < 0:
        return []
    pos = at + 5
    if der[pos : pos + 1] == b"\x01":  # critical
        pos += 3
    if (
        der[pos : pos + 1] != b"\x04"
        or pos + 2 > len(der)
        or (der[pos + 1] & 0x80 and der[pos + 1] != 0x81)
    ):
        return None
    size, start = (der[pos + 1], pos + 2) if der[pos + 1] < 0x80 else (der[pos + 2], pos + 3)
    value = der[start : start + size]
    holder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([]))
        .public_key(_KEY.public_key())
        .serial_number(1)
        .not_valid_before(datetime.datetime(2024, 1, 1))
        .not_valid_after(datetime.datetime(2034, 1, 1))
        .add_extension(
            x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, value), critical=False
        )
        .sign(_KEY, hashes.SHA256())
    )
    try:
        return _san(x509.load_der_x509_certificate(holder.public_bytes(Encoding.DER)))
    except Exception:
        return None


def reference(der: bytes) -> tuple[str | None, str, str, list[str]] | None:
    """What certificate_fields reads through cryptography's objects (None: it fails)."""
    try:
        cert = x509.load_der_x509_certificate(der)
        names = _names(cert)
    except Exception:
        return None
    try:
        san = _san(cert)
    except Exception:
        # One of the other extensions is malformed: cryptography gives no SAN at all, the
        # reader still reads it (the one deliberate difference); compare the SAN alone.
        alone = _san_alone(der)
        if alone is None:
            return None
        san = alone
    return (*names, san)


def make(
    subject: list[list[tuple[ObjectIdentifier, str, _ASN1Type]]],
    issuer: list[list[tuple[ObjectIdentifier, str, _ASN1Type]]] | None,
    san: list[x509.GeneralName] | None,
) -> bytes:
    def name(rdns: list[list[tuple[ObjectIdentifier, str, _ASN1Type]]]) -> x509.Name:
        return x509.Name(
            [
                x509.RelativeDistinguishedName(
                    [x509.NameAttribute(oid, value, _type=kind) for oid, value, kind in rdn]
                )
                for rdn in rdns
            ]
        )

    builder = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(name(issuer if issuer is not None else subject))
        .public_key(_KEY.public_key())
        .serial_number(7)
        .not_valid_before(datetime.datetime(2024, 1, 1))
        .not_valid_after(datetime.datetime(2034, 1, 1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if san is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(_KEY, hashes.SHA256()).public_bytes(Encoding.DER)


def agrees(der: bytes) -> bool:
    """The reader's answer is cryptography's; True when it answered at all."""
    try:
        x509.load_der_x509_certificate(der)
    except Exception:
        return False  # certificate_fields stops here with a parse_error: no reader
    fast = reader.fields(der, _MAX_NAME_CHARS, _MAX_SAN)
    if fast is None:
        return False
    assert fast[:4] == reference(der)
    fields = certificate_fields(der)
    assert (fields["subject_cn"], fields["subject"], fields["issuer"], fields["san"]) == fast[:4]
    # The validity the reader hands over gives cryptography's times.
    cert = x509.load_der_x509_certificate(der)
    assert fields["not_before"] == cert.not_valid_before_utc.isoformat()[:19] + "Z"
    assert fields["not_after"] == cert.not_valid_after_utc.isoformat()[:19] + "Z"
    return True


@st.composite
def attributes(draw: st.DrawFn, kinds: list[_ASN1Type]) -> tuple[ObjectIdentifier, str, _ASN1Type]:
    oid = draw(st.sampled_from(_OIDS))
    kind = draw(st.sampled_from(kinds))
    value = draw(_VALUES)
    if kind in (_ASN1Type.PrintableString, _ASN1Type.IA5String):
        value = value.replace("é", "e")
    if kind == _ASN1Type.PrintableString:  # X.680's PrintableString alphabet only
        value = "".join(c for c in value if c.isalnum() or c in " '()+,-./:=?")
    if not value:
        value = "x"
    if oid in (NameOID.COUNTRY_NAME, NameOID.JURISDICTION_COUNTRY_NAME):
        # cryptography's builder insists on two characters (counted in bytes)
        value = (value + "XX")[:2] if value.isascii() else "BE"
    return oid, value, kind


_SAN_ENTRIES = st.one_of(
    st.from_regex(r"[a-z0-9*.-]{1,20}", fullmatch=True).map(x509.DNSName),
    st.from_regex(r"[a-z]{1,8}@[a-z.]{1,10}", fullmatch=True).map(x509.RFC822Name),
    st.from_regex(r"https://[a-z.]{1,12}/[a-z]{0,5}", fullmatch=True).map(
        x509.UniformResourceIdentifier
    ),
    st.ip_addresses().map(x509.IPAddress),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    subject=st.lists(st.lists(attributes(_SIMPLE_TYPES), min_size=1, max_size=1), max_size=6),
    self_signed=st.booleans(),
    issuer=st.lists(st.lists(attributes(_SIMPLE_TYPES), min_size=1, max_size=1), max_size=4),
    san=st.none() | st.lists(_SAN_ENTRIES, max_size=8),
)
def test_the_shapes_servers_use_are_read_and_equal(
    subject: list[list[tuple[ObjectIdentifier, str, _ASN1Type]]],
    self_signed: bool,
    issuer: list[list[tuple[ObjectIdentifier, str, _ASN1Type]]],
    san: list[x509.GeneralName] | None,
) -> None:
    der = make(subject, None if self_signed else issuer, san)
    assert agrees(der), "the reader declined a plain certificate"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    subject=st.lists(
        st.lists(
            attributes(_SIMPLE_TYPES + _OTHER_TYPES),
            min_size=1,
            max_size=3,
            unique_by=lambda a: (a[0], a[1]),
        ),
        min_size=1,
        max_size=4,
    ),
    san=st.none()
    | st.lists(
        _SAN_ENTRIES
        | st.just(x509.OtherName(ObjectIdentifier("1.3.6.1.4.1.311.20.2.3"), b"\x0c\x01a"))
        | st.just(x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "d")])))
        | st.just(x509.RegisteredID(ObjectIdentifier("1.2.3"))),
        max_size=5,
    ),
)
def test_other_shapes_are_equal_or_left_to_cryptography(
    subject: list[list[tuple[ObjectIdentifier, str, _ASN1Type]]],
    san: list[x509.GeneralName] | None,
) -> None:
    agrees(make(subject, None, san))


def test_declines_what_it_does_not_render() -> None:
    cn = [(NameOID.COMMON_NAME, "mail.contoso.test", _ASN1Type.UTF8String)]
    assert agrees(make([cn], None, [x509.DNSName("mail.contoso.test")]))
    bmp = [(NameOID.ORGANIZATION_NAME, "Contoso", _ASN1Type.BMPString)]
    assert not agrees(make([cn, bmp], None, None))
    multi = [cn[0], (NameOID.ORGANIZATION_NAME, "Contoso", _ASN1Type.UTF8String)]
    assert not agrees(make([multi], None, None))
    other = x509.OtherName(ObjectIdentifier("1.3.6.1.4.1.311.20.2.3"), b"\x0c\x01a")
    assert not agrees(make([cn], None, [other]))


def test_san_is_cut_at_the_limit_like_cryptography() -> None:
    cn = [(NameOID.COMMON_NAME, "mail.contoso.test", _ASN1Type.UTF8String)]
    long = [(NameOID.ORGANIZATIONAL_UNIT_NAME, "x" * 600, _ASN1Type.UTF8String)]
    names: list[x509.GeneralName] = [x509.DNSName(f"h{i}.contoso.test") for i in range(150)]
    names.insert(3, x509.IPAddress(ipaddress.ip_address("2001:db8::1")))
    der = make([long, cn], None, names)
    assert agrees(der)
    fields = certificate_fields(der)
    assert len(fields["san"]) == _MAX_SAN
    assert fields["san"][3] == "2001:db8::1"
    assert fields["subject"] == "CN=mail.contoso.test,OU=" + "x" * (_MAX_NAME_CHARS - 24)


@pytest.mark.parametrize("seed", range(4))
def test_mutated_encodings_are_equal_or_declined(seed: int) -> None:
    """Bytes changed, tags swapped, lengths cut: never an answer cryptography would not give."""
    rng = random.Random(seed)  # noqa: S311 - reproducible mutations, not secrets
    base = make(
        [
            [(NameOID.COUNTRY_NAME, "BE", _ASN1Type.PrintableString)],
            [(NameOID.ORGANIZATION_NAME, "Contoso, Ltd", _ASN1Type.UTF8String)],
            [(NameOID.COMMON_NAME, "mail.contoso.test", _ASN1Type.UTF8String)],
        ],
        [[(NameOID.COMMON_NAME, "Contoso CA", _ASN1Type.PrintableString)]],
        [x509.DNSName("mail.contoso.test"), x509.IPAddress(ipaddress.ip_address("192.0.2.7"))],
    )
    answered = 0
    for _ in range(1500):
        der = bytearray(base)
        for _ in range(rng.randint(1, 3)):
            where = rng.randrange(len(der))
            choice = rng.random()
            if choice < 0.5:
                der[where] = rng.randrange(256)
            elif choice < 0.8:
                der[where] = rng.choice([0x0C, 0x13, 0x16, 0x14, 0x1E, 0x31, 0x30, 0x82, 0x87])
            else:
                del der[max(where, 1) :]
        answered += agrees(bytes(der))
        certificate_fields(bytes(der))  # never raises
    assert answered > 100  # many mutations leave a readable certificate: they were compared
