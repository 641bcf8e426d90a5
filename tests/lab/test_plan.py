"""The lab's host plan and ground truth, without starting any server."""

from __future__ import annotations

import ipaddress
import re

import pytest

from exwatch.lab.builds import load_builds, parse_build
from exwatch.lab.ntlm import NtlmIdentity, challenge_header
from exwatch.lab.plan import (
    EXCHANGE_PROFILES,
    HOSTILE_STATUS,
    SUSPECT_PROFILES,
    WEB_PROFILES,
    ground_truth,
    make_plan,
)

from .ntlm_decode import decode_type2


def test_same_seed_same_plan_other_seed_other_plan() -> None:
    a = ground_truth(make_plan(200, seed=7))
    b = ground_truth(make_plan(200, seed=7))
    c = ground_truth(make_plan(200, seed=8))
    assert a == b
    assert a["hosts"] != c["hosts"]


def test_default_mix_shares() -> None:
    counts = ground_truth(make_plan(1000, seed=1))["counts"]
    hostile = sum(v for k, v in counts.items() if k.startswith("hostile-"))
    assert counts["exchange"] == 560
    assert counts["online"] == 20
    assert counts["suspect"] == 20
    assert counts["web"] == 150
    assert counts["closed"] == 150
    assert counts["silent"] == 50
    assert hostile == 50


def test_small_lab_still_shows_every_kind_profile_and_line() -> None:
    gt = ground_truth(make_plan(70, seed=2))["hosts"].values()
    kinds = {h["kind"] for h in gt}
    assert {f"hostile-{b}" for b in HOSTILE_STATUS} <= kinds
    assert {"exchange", "online", "suspect", "web", "closed", "silent"} <= kinds
    assert {h["profile"] for h in gt if h["kind"] == "web"} == set(WEB_PROFILES)
    assert {h["profile"] for h in gt if h["kind"] == "suspect"} == set(SUSPECT_PROFILES)
    exchange = [h for h in gt if h["kind"] == "exchange"]
    assert {h["profile"] for h in exchange} == set(EXCHANGE_PROFILES)
    assert {h["product"] for h in exchange} - {None} == {
        "Exchange Server 2003",
        "Exchange Server 2007",
        "Exchange Server 2010",
        "Exchange Server 2013",
        "Exchange Server 2016",
        "Exchange Server 2019",
        "Exchange Server SE",
    }


def test_ground_truth_is_consistent() -> None:
    doc = ground_truth(make_plan(600, seed=4, port=9443))
    hidden = {"closed-owa-nginx", "fba-off", "legacy-2003", "closed-owa-apache", "custom-logon"}
    for ip, h in doc["hosts"].items():
        assert ipaddress.IPv4Address(ip).is_loopback
        assert h["port"] == 9443
        if h["kind"] != "exchange":
            assert h["build"] is None
            assert h["builds_seen"] == []
            assert h["techniques"] == ([] if h["kind"] != "online" else ["exchange-online"])
            assert bool(h["suspect_checks"]) == (h["kind"] == "suspect")
            continue
        assert h["expected_status"] == "success"
        if h["build"] is None:
            assert h["precision"] is None
            assert h["profile"] in hidden
            continue
        # the oldest build seen is the one judged; a three-part build of a CU also seen
        # with four parts is folded into it
        assert h["build"] == h["builds_seen"][0]
        assert h["build"] in h["builds_seen"]
        parts = h["build"].count(".") + 1
        assert h["precision"] == ("su" if parts == 4 else "cu")
        if "x-owa-version" in h["techniques"] or "exporttool" in h["techniques"]:
            assert parts == 4
        if h["profile"] == "page-only" and not h["build"].startswith("14."):
            assert h["precision"] == "cu"
        if h["profile"] in {"load-balancer", "load-balancer-3"}:
            assert len(h["true_builds"]) == len(set(h["true_builds"])) >= 2


def test_cidrs_cover_exactly_the_lab() -> None:
    plan = make_plan(300, seed=1, base="127.16.3.7")
    covered = [str(a) for c in plan.cidrs for a in ipaddress.ip_network(c)]
    assert covered == [h.ip for h in plan.hosts]


@pytest.mark.parametrize("base", ["10.0.0.1", "127.0.0.1", "127.255.255.250", "192.168.1.1"])
def test_only_loopback_and_never_127_0_0_1(base: str) -> None:
    with pytest.raises(ValueError, match=r"127"):
        make_plan(20, base=base)


def test_build_list_covers_every_line() -> None:
    builds = load_builds()
    assert set(builds) == {"2003", "2007", "2010", "2013", "2016", "2019", "SE"}
    assert all(builds.values())
    assert parse_build("15.02.2562.017") is not None
    assert parse_build("15.2.2562") is None
    assert parse_build("8.3.485.1") is not None
    assert parse_build("9.1.2.3") is None


def test_ntlm_challenge_decodes_to_the_names_given() -> None:
    who = NtlmIdentity(
        "CONTOSO",
        "EXCH01",
        "contoso.local",
        "exch01.contoso.local",
        "contoso.local",
        (10, 0, 17763),
    )
    token = challenge_header(who, b"\x01\x02\x03\x04\x05\x06\x07\x08", 133_000_000_000_000_000)
    assert re.fullmatch(r"[A-Za-z0-9+/=]+", token)
    assert decode_type2(token) == who.to_json()
