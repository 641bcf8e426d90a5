"""NTLM type-1 construction and type-2 parsing (pure, hostile input)."""

from __future__ import annotations

import base64
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exwatch.ntlm import (
    NEGOTIATE_B64,
    NtlmParseError,
    build_challenge,
    challenge_from_header,
    negotiate_message,
    parse_challenge,
)


def test_negotiate_message_layout() -> None:
    msg = negotiate_message()
    assert msg.startswith(b"NTLMSSP\x00")
    assert struct.unpack_from("<I", msg, 8) == (1,)
    assert len(msg) == 40
    assert base64.b64decode(NEGOTIATE_B64) == msg


def test_round_trip_all_fields() -> None:
    raw = build_challenge(
        netbios_domain="FABRIKAM",
        netbios_computer="MBX07",
        dns_domain="fabrikam.test",
        dns_computer="mbx07.fabrikam.test",
        dns_tree="fabrikam.test",
        os_version=(10, 0, 20348),
    )
    c = parse_challenge(raw)
    assert c.target_name == "FABRIKAM"
    assert c.to_json() == {
        "netbios_domain": "FABRIKAM",
        "netbios_computer": "MBX07",
        "dns_domain": "fabrikam.test",
        "dns_computer": "mbx07.fabrikam.test",
        "dns_tree": "fabrikam.test",
        "os_version": "10.0.20348",
    }


def test_header_forms() -> None:
    token = base64.b64encode(build_challenge()).decode()
    assert challenge_from_header(f"NTLM {token}").netbios_computer == "EXCH01"
    assert challenge_from_header(f"Negotiate {token}").dns_domain == "contoso.local"
    assert challenge_from_header(token).os_version == "10.0.17763"


def test_version_absent_without_flag() -> None:
    raw = bytearray(build_challenge())
    flags = struct.unpack_from("<I", raw, 20)[0] & ~0x02000000
    struct.pack_into("<I", raw, 20, flags)
    assert parse_challenge(bytes(raw)).os_version is None


def test_long_names_are_truncated() -> None:
    c = parse_challenge(build_challenge(dns_computer="a" * 5000))
    assert c.dns_computer == "a" * 256


def _bad(raw: bytes) -> str:
    return "NTLM " + base64.b64encode(raw).decode()


GOOD = build_challenge()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("NTLM", "without a challenge"),
        ("NTLM !!!", "not base64"),
        ("NTLM " + "A" * 9000, "longer than 8 KiB"),
        (_bad(b"NTLMSSP\x00"), "not an NTLMSSP"),
        (_bad(b"XXXXXXXX" + GOOD[8:]), "not an NTLMSSP"),
        (_bad(GOOD[:8] + struct.pack("<I", 3) + GOOD[12:]), "type 3"),
        (_bad(GOOD[:40] + struct.pack("<HHI", 400, 400, 56) + GOOD[48:]), "past the message end"),
        (_bad(GOOD[:12] + struct.pack("<HHI", 10, 10, 60000) + GOOD[20:]), "past the message end"),
        (_bad(GOOD[:-4]), "past the message end"),
    ],
)
def test_malformed_challenges(value: str, message: str) -> None:
    with pytest.raises(NtlmParseError, match=message):
        challenge_from_header(value)


def test_av_pair_length_past_end() -> None:
    raw = bytearray(GOOD)
    # first AV pair (at offset 56 + len(target)) claims 0xFFFF bytes
    at = 56 + len("CONTOSO".encode("utf-16-le"))
    struct.pack_into("<H", raw, at + 2, 0xFFFF)
    with pytest.raises(NtlmParseError, match="runs past"):
        parse_challenge(bytes(raw))


def test_av_pairs_without_terminator() -> None:
    raw = bytearray(GOOD[:-4])  # drop MsvAvEOL and shrink the buffer to match
    length = struct.unpack_from("<H", raw, 40)[0] - 4
    struct.pack_into("<HH", raw, 40, length, length)
    with pytest.raises(NtlmParseError, match="inside an AV pair header"):
        parse_challenge(bytes(raw))


def test_short_message_without_target_info_is_accepted() -> None:
    raw = GOOD[:12] + struct.pack("<HHI", 0, 0, 0) + GOOD[20:44]
    c = parse_challenge(raw)
    assert c.target_name is None
    assert c.dns_computer is None
    assert c.os_version is None


def test_too_many_av_pairs() -> None:
    pairs = struct.pack("<HH", 9, 0) * 100 + struct.pack("<HH", 0, 0)
    raw = GOOD[:40] + struct.pack("<HHI", len(pairs), len(pairs), 56) + GOOD[48:56] + pairs
    with pytest.raises(NtlmParseError, match="too many"):
        parse_challenge(raw)


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=40) | st.sampled_from([b"\x00\xd8", b"a\x00b", b"\x00\xdc\x41\x00"]))
def test_unicode_fields_decode_as_bytes_decode_does(raw: bytes) -> None:
    """The fields are read by the UTF-16-LE codec function itself (not bytes.decode's codec
    lookup): the same text for any bytes, an odd last byte and lone surrogates included."""
    from exwatch.ntlm import _MAX_FIELD_CHARS, _decode

    assert _decode(raw, True) == raw.decode("utf-16-le", errors="replace")[:_MAX_FIELD_CHARS]
