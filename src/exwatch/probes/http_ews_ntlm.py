"""`http-ews-ntlm`: the NTLM challenge of /EWS/Exchange.asmx (names and Windows build).

Sends an NTLM NEGOTIATE (type 1) and reads the CHALLENGE (type 2) from the 401; no
credentials are involved and the handshake goes no further.  A malformed challenge is
noted, never fatal.  On an Exchange host it always runs (once); while searching for
Exchange with OWA closed (DISCOVER) only after Autodiscover or OWA asked for
authentication, and its Windows-authentication answer is one of the clues.
"""

from __future__ import annotations

from exwatch.ntlm import NEGOTIATE_B64, NtlmParseError, challenge_from_header
from exwatch.probes.base import Probe, ProbeContext, Risk, Stage

ID = "http-ews-ntlm"
PATH = "/EWS/Exchange.asmx"
_AUTH = (("Authorization", f"NTLM {NEGOTIATE_B64}"),)
_DISCOVER_AFTER = frozenset({"windows-auth", "auth-challenge"})


async def run(ctx: ProbeContext) -> None:
    if ctx.asked(ID):
        return
    if ctx.stage is Stage.DISCOVER and not (ctx.clue_sources() & _DISCOVER_AFTER):
        return
    if ctx.only_lines("2003"):
        return  # EWS came with Exchange 2007
    response = await ctx.fetch(ID, "GET", PATH, _AUTH)
    for value in response.header_all("www-authenticate"):
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() not in ("ntlm", "negotiate") or not token.strip():
            continue
        try:
            ctx.ntlm = challenge_from_header(value)
        except NtlmParseError as exc:
            ctx.notes.append(f"{ID}: malformed NTLM challenge: {exc}")
        return


PROBE = Probe(
    id=ID,
    risk=Risk.PASSIVE,
    stages=(Stage.DISCOVER, Stage.EXCHANGE),
    requests=(f"GET {PATH} (Authorization: NTLM <type 1>)",),
    description="NTLM type-2 challenge: NetBIOS/DNS names and Windows build",
    run=run,
)
