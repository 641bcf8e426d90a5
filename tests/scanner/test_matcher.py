"""The fingerprint matcher's shortcuts change nothing it finds (performance.md, "third pass").

`sightings` plans the entries per (probe, status) and remembers what header values and
bodies gave; `combine` reads the sightings in one pass and remembers its answer.  Both are
held here to plain readings of their rules: every entry's `match_text` on the text it
reads, and `is_online`, `is_exchange` and `satisfied_patterns` for the verdicts, on corpus
responses and generated ones, each asked more than once and under other probes and codes
so that the remembered answers are used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from hypothesis import example, given, settings
from hypothesis import strategies as st

from exwatch.fingerprint import (
    BUILD_SOURCES,
    BY_ID,
    ENTRIES,
    PRODUCT_NAMES,
    Entry,
    Fingerprint,
    HttpObservation,
    Sighting,
    combine,
    is_exchange,
    is_online,
    match_text,
    product_family,
    satisfied_patterns,
    sightings,
)
from exwatch.model import Build
from exwatch.probes import BY_ID as PROBES

from .conftest import CORPUS, load_canned

if TYPE_CHECKING:
    from exwatch.probes.base import ProbeContext


def reference_sightings(obs: HttpObservation) -> list[Sighting]:
    """Each entry's `match_text` on the text it reads, where its probe and status filters let
    it: header entries in header order, then body entries, then status entries."""
    out: list[Sighting] = []

    def read(entry: Entry, text: str) -> None:
        if entry.probes is not None and obs.probe not in entry.probes:
            return
        if entry.status is not None and obs.status not in entry.status:
            return
        for build in match_text(entry, text):
            out.append(
                Sighting(
                    entry.id, entry.kind, entry.source, entry.weight, build, obs.probe, obs.path
                )
            )

    for name, value in obs.headers:
        for entry in ENTRIES:
            if entry.reads == f"header.{name}":
                read(entry, value)
    if obs.body:
        for entry in ENTRIES:
            if entry.reads == "body":
                read(entry, obs.body)
    for entry in ENTRIES:
        if entry.reads == "status":
            read(entry, str(obs.status))
    return out


def _key(t: str) -> tuple[int, int, int, int]:
    return Build.parse(t).as_tuple()


def reference_combine(found: Sequence[Sighting], *, ntlm: bool = False) -> Fingerprint:
    """The combination rules read one at a time, each over all sightings."""
    online = is_online(found)
    exchange = is_exchange(found)
    by_build: dict[str, set[str]] = {}
    for s in found:
        if s.kind == "build" and s.build is not None:
            by_build.setdefault(s.build, set()).add(s.source)
    parsed = {t: Build.parse(t) for t in by_build}
    full_cus = {b.cu_key for b in parsed.values() if b.revision is not None}
    seen = [t for t, b in parsed.items() if b.revision is not None or b.cu_key not in full_cus]
    best = min(seen, key=_key) if seen else None
    sources: list[str] = []
    if best is not None:
        agreed = set(by_build[best])
        for other, b in parsed.items():
            four_parts = parsed[best].revision is not None
            if four_parts and b.revision is None and b.cu_key == parsed[best].cu_key:
                agreed |= by_build[other]
        sources += [s for s in BUILD_SOURCES if s in agreed]
    sources += [
        s.source
        for s in found
        if s.kind == "marker" and (best is None or s.source not in BUILD_SOURCES)
    ]
    sources += [p.source for p in satisfied_patterns(found)]
    proxies = tuple(dict.fromkeys(s.source for s in found if s.kind == "proxy"))
    product = None
    if exchange:
        sources += [*proxies, *(["ntlm"] if ntlm else [])]
        if best is not None:
            product = product_family(best)
        else:
            hints = [BY_ID[s.entry].product for s in found if s.kind == "marker"]
            product = next((PRODUCT_NAMES[h] for h in hints if h is not None), None)
    elif online:
        product = "Exchange Online"
    return Fingerprint(
        is_exchange=exchange,
        build=best if exchange else None,
        precision=parsed[best].precision if exchange and best is not None else None,
        sources=tuple(dict.fromkeys(sources)) if exchange else (),
        builds_seen=tuple(sorted(seen, key=_key)) if exchange else (),
        markers=tuple(dict.fromkeys(s.entry for s in found if s.kind in ("marker", "build"))),
        proxies=proxies,
        online=online,
        online_sources=(
            tuple(dict.fromkeys(s.source for s in found if s.kind == "online")) if online else ()
        ),
        product=product,
    )


def _corpus() -> list[HttpObservation]:
    out = []
    for path in sorted(CORPUS.glob("*/*.http")):
        c = load_canned(path)
        headers = tuple((k.lower(), v) for k, v in c.headers)
        out.append(HttpObservation("", "/", c.status, headers, c.body.decode("latin-1")))
    return out


CORPUS_RESPONSES = _corpus()
STATUSES = (200, 302, 401, 403, 404, 500)


def test_corpus_responses_under_every_probe_and_status() -> None:
    assert len(CORPUS_RESPONSES) > 30
    for _ in range(2):  # the second round from the plans and remembered header values
        for probe in sorted(PROBES):
            for status in STATUSES:
                for obs in CORPUS_RESPONSES:
                    obs = obs._replace(probe=probe, status=status, path=f"/{probe}")
                    assert sightings(obs) == reference_sightings(obs)


def test_bodies_too_long_to_remember_are_read_each_time() -> None:
    """A body over the memo's size is matched afresh on every response, with the same
    result as the plain reading (and a short one remembered gives it too)."""
    from exwatch import fingerprint

    for obs in CORPUS_RESPONSES:
        long = obs._replace(probe="http-owa-logon", status=200, body=obs.body + " " * 9000)
        for _ in range(2):
            assert sightings(long) == reference_sightings(long)
        assert (long.probe, long.status, long.body) not in fingerprint._body_found


# Header values and bodies that matter: the fingerprint examples themselves, mixed.
_EXAMPLES = [ex["text"] for e in ENTRIES for ex in e.examples] + [
    c for e in ENTRIES for c in e.counter_examples
]
_HEADER_NAMES = sorted({e.reads.removeprefix("header.") for e in ENTRIES} - {"body", "status"})


@st.composite
def observations(draw: st.DrawFn) -> HttpObservation:
    headers = draw(
        st.lists(
            st.tuples(
                st.sampled_from([*_HEADER_NAMES, "server", "x-other"]),
                st.sampled_from(_EXAMPLES) | st.text(max_size=30),
            ),
            max_size=6,
        )
    )
    body = "".join(draw(st.lists(st.sampled_from(_EXAMPLES) | st.text(max_size=20), max_size=4)))
    return HttpObservation(
        draw(st.sampled_from(sorted(PROBES))),
        draw(st.sampled_from(["/", "/owa/", "/ecp/x"])),
        draw(st.sampled_from((*STATUSES, 200, 401))),
        tuple(headers),
        body,
    )


@settings(max_examples=300, deadline=None)
@given(many=st.lists(observations(), min_size=1, max_size=5), ntlm=st.booleans())
def test_generated_responses_and_their_combination(many: list[HttpObservation], ntlm: bool) -> None:
    found: list[Sighting] = []
    for obs in many:
        got = sightings(obs)
        assert got == reference_sightings(obs)
        assert sightings(obs) == got  # asked again: the same
        found.extend(got)
    assert combine(found, ntlm=ntlm) == reference_combine(found, ntlm=ntlm)
    # asked again (the remembered answer), and with the other NTLM reading (not it)
    assert combine(list(found), ntlm=ntlm) == reference_combine(found, ntlm=ntlm)
    assert combine(found, ntlm=not ntlm) == reference_combine(found, ntlm=not ntlm)


@settings(max_examples=300, deadline=None)
@given(
    picks=st.lists(
        st.tuples(
            st.sampled_from(ENTRIES),
            st.sampled_from(
                ["15.1.2507.39", "15.1.2507", "15.2.1544.4", "15.2.1544", "14.3.123.4"]
            ),
        ),
        max_size=12,
    ),
    ntlm=st.booleans(),
)
def test_any_mix_of_sightings_combines_as_the_rules_say(
    picks: list[tuple[Entry, str]], ntlm: bool
) -> None:
    found = [
        Sighting(e.id, e.kind, e.source, e.weight, build if e.kind == "build" else None, "p", "/")
        for e, build in picks
    ]
    assert combine(found, ntlm=ntlm) == reference_combine(found, ntlm=ntlm)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.lists(st.sampled_from([None, "15.1.2507", "15.1.2507.39", "8.3.83.6"]), max_size=3)
        | st.just([]).map(lambda _: None),  # None: the list is emptied
        max_size=8,
    ),
    asked=st.lists(st.booleans(), min_size=8, max_size=8),
)
def test_has_su_build_follows_the_sightings(
    steps: list[list[str | None] | None], asked: list[bool]
) -> None:
    """`has_su_build` reads only the sightings added since it last answered; it still says
    what a pass over all of them says, whatever happens to the list in between."""
    from exwatch.probes.base import ProbeContext

    ctx = ProbeContext(None, "host")  # type: ignore[arg-type]
    for step, ask in zip(steps, asked, strict=False):
        if step is None:
            ctx.sightings.clear()
        else:
            ctx.sightings.extend(Sighting("e", "build", "s", "strong", b, "p", "/") for b in step)
        if ask:  # not asked after every change: the next answer must still be right
            expected = any(s.build is not None and s.build.count(".") == 3 for s in ctx.sightings)
            assert ctx.has_su_build() == expected


# A ProbeContext's sightings changing step by step: None empties the list, a list of
# (entry id, build) adds those sightings.
_SIGHTING_STEPS = st.lists(
    st.none()
    | st.lists(
        st.tuples(
            st.sampled_from(sorted(BY_ID)),
            st.sampled_from([None, "15.1.2507.39", "15.2.1544", "8.3.83.6", "6.5.7638.1"]),
        ),
        max_size=3,
    ),
    max_size=8,
)


def _apply_step(ctx: ProbeContext, step: list[tuple[str, str | None]] | None) -> None:
    if step is None:
        ctx.sightings.clear()
    else:
        ctx.sightings.extend(
            Sighting(e, BY_ID[e].kind, BY_ID[e].source, BY_ID[e].weight, b, "p", "/")
            for e, b in step
        )


@settings(max_examples=300, deadline=None)
@given(
    steps=_SIGHTING_STEPS,
    asked=st.lists(st.booleans(), min_size=8, max_size=8),
)
@example(  # emptied and refilled to the same length with other lines
    steps=[[("owa-path-auth", "15.1.2507.39")], None, [("owa-path-auth", "8.3.83.6")]],
    asked=[True, False, True, False, False, False, False, False],
)
def test_product_lines_follow_the_sightings(
    steps: list[list[tuple[str, str | None]] | None], asked: list[bool]
) -> None:
    """`product_lines` is worked out once per new sighting; it still says what a pass over
    all of them says, whatever happens to the list in between."""
    from exwatch.fingerprint import product_id
    from exwatch.probes.base import ProbeContext

    ctx = ProbeContext(None, "host")  # type: ignore[arg-type]
    for step, ask in zip(steps, asked, strict=False):
        _apply_step(ctx, step)
        if ask:
            found = ctx.sightings
            expected = {pid for s in found if s.build and (pid := product_id(s.build))} or {
                p for s in found if (p := BY_ID[s.entry].product) is not None
            }
            assert ctx.product_lines() == expected


def test_long_sighting_lists_are_combined_each_time() -> None:
    """A list over the memo's length is combined afresh (and not kept), with the same
    result as the plain reading."""
    from exwatch import fingerprint

    builds = [f"15.1.{2000 + i}.{i}" for i in range(70)]
    found = [Sighting("owa-path-auth", "build", "owa-path", "strong", b, "p", "/") for b in builds]
    for _ in range(2):
        assert combine(found) == reference_combine(found)
    assert all(len(key[1]) <= fingerprint._COMBINED_SIGHTINGS for key in fingerprint._combined)


def test_the_combine_memo_keeps_no_path() -> None:
    """A server chooses the paths its redirects lead to: the memo's key leaves them (and
    the probes) out, so a long path is not kept, and the same evidence under another path
    gives the same fingerprint."""
    from exwatch import fingerprint

    long_path = "/owa/auth/" + "a" * 60_000
    found = [
        Sighting("owa-path-auth", "build", "owa-path", "strong", "15.1.2507.39", "p", long_path)
    ]
    assert combine(found) == reference_combine(found)
    moved = [found[0]._replace(path="/owa/auth/logon.aspx", probe="q")]
    assert combine(moved) == reference_combine(moved) == combine(found)
    assert not any(long_path in key_part for _, key in fingerprint._combined for key_part in key)


@settings(max_examples=300, deadline=None)
@given(
    steps=_SIGHTING_STEPS,
    asked=st.lists(st.booleans(), min_size=8, max_size=8),
    ntlm=st.lists(st.booleans(), min_size=8, max_size=8),
)
@example(  # emptied and refilled to the same length with other evidence
    steps=[[("owa-path-auth", "15.1.2507.39")], None, [("owa-path-auth", "8.3.83.6")]],
    asked=[True, False, True, False, False, False, False, False],
    ntlm=[False] * 8,
)
@example(  # the NTLM challenge read with no new sighting (it adds the "ntlm" source)
    steps=[[("owa-path-auth", "15.1.2507.39")], []],
    asked=[True, True, False, False, False, False, False, False],
    ntlm=[False, True, False, False, False, False, False, False],
)
def test_fingerprint_follows_the_sightings(
    steps: list[list[tuple[str, str | None]] | None], asked: list[bool], ntlm: list[bool]
) -> None:
    """`ProbeContext.fingerprint` is worked out once per new sighting or NTLM reading; it
    still says what combining all of them says, whatever happens to the list in between."""
    from exwatch.ntlm import NtlmChallenge
    from exwatch.probes.base import ProbeContext

    ctx = ProbeContext(None, "host")  # type: ignore[arg-type]
    read = NtlmChallenge(None, None, None, None, None, None, None)
    for step, ask, has_ntlm in zip(steps, asked, ntlm, strict=False):
        _apply_step(ctx, step)
        ctx.ntlm = read if has_ntlm else None
        if ask:
            assert ctx.fingerprint() == combine(list(ctx.sightings), ntlm=has_ntlm)
