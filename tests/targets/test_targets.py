"""Target parsing, exclusions, refusal of reserved ranges and the seeded, sharded order."""

from __future__ import annotations

import asyncio
import io
import ipaddress
import tracemalloc
from itertools import islice
from pathlib import Path

import pytest

from exwatch.errors import UsageError
from exwatch.scan.exclusions import Exclusions, is_reserved
from exwatch.scan.permutation import Permutation, is_prime, next_safe_prime
from exwatch.scan.targets import (
    ResolutionError,
    Spec,
    TargetSpace,
    parse_hostname,
    parse_shard,
    read_specs,
    resolve,
)


def ips(space: TargetSpace, seed: int = 1, shard: tuple[int, int] = (0, 1)) -> list[str]:
    return [t.ip or f"name:{t.hostname}" for t in space.iter(seed, shard)]


def test_cidr_yields_every_address_once_in_scrambled_order() -> None:
    space = TargetSpace.from_specs(["8.8.4.0/24"])
    got = ips(space)
    expected = [str(a) for a in ipaddress.ip_network("8.8.4.0/24")]
    assert space.count == 256
    assert sorted(got, key=ipaddress.ip_address) == expected
    assert got != expected  # permuted, not sequential


def test_same_seed_same_order_other_seed_other_order() -> None:
    space = TargetSpace.from_specs(["8.8.0.0/22", "1.1.1.1", "example.org"])
    assert ips(space, 42) == ips(space, 42)
    assert ips(space, 42) != ips(space, 43)
    assert sorted(ips(space, 42)) == sorted(ips(space, 43))


def test_shards_are_disjoint_and_cover_a_slash_20() -> None:
    space = TargetSpace.from_specs(["44.12.16.0/20", "example.net"])
    n = 7
    shards = [ips(space, 99, (i, n)) for i in range(n)]
    flat = [ip for shard in shards for ip in shard]
    assert len(flat) == len(set(flat)) == space.count == 4096 + 1
    assert set(flat) == set(ips(space, 99))
    for i, shard in enumerate(shards):
        assert abs(len(shard) - space.shard_count((i, n))) < 200


def test_index_is_a_resume_watermark() -> None:
    space = TargetSpace.from_specs(["44.12.16.0/24"])
    full = list(space.iter(5, (1, 3)))
    cut = full[40].position
    rest = list(space.iter(5, (1, 3), from_position=cut + 1))
    assert rest == full[41:]
    assert all(t.position % 3 == 1 for t in full)


def test_ranges_and_duplicates_are_merged() -> None:
    space = TargetSpace.from_specs(["8.8.8.250-8.8.9.5", "8.8.9.0/30", "8.8.8.250"])
    got = sorted(ips(space), key=ipaddress.ip_address)
    assert got[0] == "8.8.8.250"
    assert got[-1] == "8.8.9.5"
    assert len(got) == space.count == 12


def test_ipv6_addresses_and_cidrs() -> None:
    space = TargetSpace.from_specs(["2a00:1450:4001::/120", "2606:4700::1111", "8.8.8.8"])
    got = ips(space)
    assert space.count == 256 + 2
    assert "2606:4700::1111" in got
    assert "2a00:1450:4001::ff" in got
    assert "8.8.8.8" in got
    assert len(set(got)) == len(got)


def test_hostnames_are_yielded_unresolved_and_normalised() -> None:
    space = TargetSpace.from_specs(["Mail.Example.COM.", "mail.example.com", "owa.example.org"])
    targets = list(space.iter(3))
    assert sorted(t.hostname for t in targets if t.hostname) == [
        "mail.example.com",
        "owa.example.org",
    ]
    assert all(t.ip is None and t.port == 443 for t in targets)
    assert parse_hostname("bücher.example") == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    "bad",
    ["10.0.0.300", "1.2.3.4-10", "8.8.8.0/33", "8.8.8.9-8.8.8.1", "a b", "-x.com", "1.2.3.4-::1"],
)
def test_malformed_specs_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError) as info:
        TargetSpace.from_specs([bad], allow_private=True)
    assert bad.split("-")[0] in str(info.value) or "range" in str(info.value)


@pytest.mark.parametrize(
    "spec",
    [
        "10.1.2.3",
        "192.168.0.0/16",
        "127.0.0.1",
        "::1",
        "fe80::/64",
        "2001:db8::/48",
        "224.0.0.1",
        "255.255.255.255",
        "100.64.1.0/24",
    ],
)
def test_reserved_specs_are_refused_with_their_name(spec: str) -> None:
    with pytest.raises(UsageError, match="reserved"):
        TargetSpace.from_specs([spec])
    assert TargetSpace.from_specs([spec], allow_private=True).count >= 1


def test_partly_reserved_specs_skip_the_reserved_part_and_count_it() -> None:
    space = TargetSpace.from_specs(["9.255.255.0-10.0.0.255"])
    assert space.count == 256
    assert space.reserved_count == 256
    assert all(ip.startswith("9.255.255.") for ip in ips(space))
    whole = TargetSpace.from_specs(["0.0.0.0/0"])
    assert whole.count + whole.reserved_count == 2**32
    assert whole.reserved_count == 592_708_864


def test_exclusion_file_format_and_effect(tmp_path: Path) -> None:
    blocklist = tmp_path / "blocklist.conf"
    blocklist.write_text(
        "# national blocklist\n\n8.8.8.0/28   # our own\n8.8.8.200\n  8.8.8.100-8.8.8.101 \n"
    )
    other = tmp_path / "more.conf"
    other.write_text("2a00:1450:4001::/124\n")
    excl = Exclusions.from_files([blocklist, other])
    space = TargetSpace.from_specs(["8.8.8.0/24", "2a00:1450:4001::/120"], exclusions=excl)
    got = set(ips(space))
    assert space.excluded_count == 16 + 1 + 2 + 16
    assert space.count == 256 + 256 - space.excluded_count == len(got)
    assert "8.8.8.5" not in got
    assert "8.8.8.200" not in got
    assert "8.8.8.16" in got
    assert "8.8.8.5" in excl
    assert space.refusal("8.8.8.200") == "excluded"
    assert space.refusal("10.0.0.1") == "reserved"
    assert space.refusal("8.8.4.4") is None
    blocked = {t.ip for t in space.iter_excluded()}
    assert len(blocked) == space.excluded_count
    assert "8.8.8.101" in blocked


def test_bad_exclusion_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bl.conf"
    path.write_text("8.8.8.0/24\nnot-an-address\n")
    with pytest.raises(UsageError, match=r"bl\.conf:2"):
        Exclusions.from_files([path])
    with pytest.raises(UsageError, match="cannot read"):
        Exclusions.from_files([tmp_path / "missing.conf"])


def test_target_file_with_comments_and_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "targets.txt"
    path.write_text("# Belgian ranges\n\n8.8.8.0/30  # lab\nmail.example.com\n")
    space = TargetSpace.from_specs(read_specs(path))
    assert space.count == 5
    path.write_text("8.8.8.8\n\n10.0.0.999\n")
    with pytest.raises(UsageError, match=r"targets\.txt:3"):
        TargetSpace.from_specs(read_specs(path))
    stream = io.StringIO("8.8.8.8\n# c\n")
    assert list(read_specs(stream, "<stdin>")) == [Spec("8.8.8.8", "<stdin>:1")]


def test_memory_stays_flat_on_a_slash_8() -> None:
    space = TargetSpace.from_specs(["12.0.0.0/8", "13.0.0.0/9"])
    tracemalloc.start()
    try:
        count = sum(1 for _ in islice(space.iter(7), 200_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 200_000
    assert peak < 1_000_000  # 200 000 targets would be > 10 MB if kept


def test_whole_ipv4_space_starts_instantly() -> None:
    space = TargetSpace.from_specs(["0.0.0.0/0"])
    first = list(islice(space.iter(11, (3, 16)), 1000))
    assert len(first) == 1000
    assert not any(is_reserved(t.ip or "") for t in first)


def test_permutation_is_a_bijection() -> None:
    for size in (1, 2, 3, 10, 97, 1000):
        perm = Permutation.create(size, size)
        values = [perm.element_at(k) for k in range(perm.positions)]
        assert sorted(values) == list(range(1, perm.prime))
    assert is_prime(next_safe_prime(2**32))
    assert not is_prime(2**32 + 1)


def test_parse_shard() -> None:
    assert parse_shard("1/4") == (0, 4)
    assert parse_shard("4/4") == (3, 4)
    for bad in ("0/4", "5/4", "x", "1/0"):
        with pytest.raises(UsageError):
            parse_shard(bad)
    with pytest.raises(UsageError):
        list(TargetSpace.from_specs(["8.8.8.8"]).iter(1, (4, 4)))


def test_resolve_localhost_and_refuse_bad_names() -> None:
    addresses = asyncio.run(resolve("localhost"))
    assert "127.0.0.1" in addresses or "::1" in addresses
    with pytest.raises(ResolutionError):
        asyncio.run(resolve("a..b"))  # rejected locally, no DNS query is sent


def test_bad_port_is_refused() -> None:
    with pytest.raises(UsageError, match="port"):
        TargetSpace.from_specs(["8.8.8.8"], port=0)
