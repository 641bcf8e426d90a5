"""An independent NTLM CHALLENGE decoder for the lab tests (MS-NLMP 2.2.1.2)."""

from __future__ import annotations

import base64
import struct

_NAMES = {
    1: "netbios_computer",
    2: "netbios_domain",
    3: "dns_computer",
    4: "dns_domain",
    5: "dns_tree",
}


def decode_type2(token: str) -> dict[str, str]:
    raw = base64.b64decode(token, validate=True)
    assert raw[:8] == b"NTLMSSP\x00", "not an NTLMSSP message"
    (msg_type,) = struct.unpack_from("<I", raw, 8)
    assert msg_type == 2, f"message type {msg_type}, not a CHALLENGE"
    (flags,) = struct.unpack_from("<I", raw, 20)
    info_len, _, info_off = struct.unpack_from("<HHI", raw, 40)
    out: dict[str, str] = {}
    pos, end = info_off, info_off + info_len
    while pos + 4 <= end:
        av_id, av_len = struct.unpack_from("<HH", raw, pos)
        pos += 4
        if av_id == 0:
            break
        if av_id in _NAMES:
            out[_NAMES[av_id]] = raw[pos : pos + av_len].decode("utf-16-le")
        pos += av_len
    if flags & 0x02000000:  # NTLMSSP_NEGOTIATE_VERSION
        major, minor, build = struct.unpack_from("<BBH", raw, 48)
        out["os_version"] = f"{major}.{minor}.{build}"
    return out
