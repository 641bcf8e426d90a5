"""The lab behind a real round-trip time, with 20 % silent addresses, in a network
namespace this test creates: high concurrency must not turn live hosts into timeouts.

The scan runs inside `scenario.py` in the fresh namespace (it checks that it is there, that
loopback is its only interface and that every target is in 127.0.0.0/8 before sending
anything).  Delay comes from `tc netem` where the kernel has it, else from
`delay_relay.py`; the output says which.  Skips, saying why, where namespaces cannot be made.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.netns.namespace import NetnsUnavailable, fresh_netns, netns_inode, run_scenario

pytestmark = [pytest.mark.slow, pytest.mark.netns]

HOSTS = 300
CONCURRENCY = 2000
TIMEOUT_S = 5.0


def _scenario(rtt_s: float, *more: str) -> dict[str, Any]:
    args = ["--rtt", str(rtt_s), "--jitter", "0.1", "--hosts", str(HOSTS)]
    args += ["--silent-share", "0.2", "--concurrency", str(CONCURRENCY)]
    args += ["--timeout", str(TIMEOUT_S), "--rtt-samples", "6", *more]
    try:
        with fresh_netns() as name:
            done = run_scenario(name, args, timeout=600)
    except NetnsUnavailable as exc:
        pytest.skip(f"no private network namespace here: {exc}")
    assert done.returncode == 0, f"scenario failed ({done.returncode}):\n{done.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


@pytest.mark.parametrize("rtt_ms", [50, 200])
def test_every_live_host_found_behind_real_delay(rtt_ms: int) -> None:
    result = _scenario(rtt_ms / 1000)
    plain = result["plain_client"]
    (scan,) = result["scans"]
    print(
        f"\n[netns rtt={rtt_ms} ms] delay method: {result['delay_method']}"
        + (f" (netem refused: {result['netem_refused']})" if "netem_refused" in result else "")
        + f"; plain client: {json.dumps(plain)}; one host fingerprint:"
        f" {result['one_host_fingerprint_ms']:.0f} ms; scan: {scan['hosts_per_s']} hosts/s,"
        f" peak sockets {scan['peak_sockets_in_flight']}, false timeouts {scan['false_timeouts']}"
    )
    where = result["where"]
    assert where["inode"] != netns_inode() == where["parent_inode"]
    assert where["interfaces"] == ["lo"]
    assert result["delay_method"] in {"netem", "relay"}
    # The network really delays: one request on an open connection pays a round trip.
    assert plain["get_alone_ms"] >= 0.85 * rtt_ms, plain

    assert not scan["interrupted"]
    assert scan["records"] == scan["targets"] == HOSTS + scan["silent_addresses"]
    assert scan["false_timeouts"] == 0, (
        f"{scan['false_timeouts']} live hosts timed out at concurrency {CONCURRENCY}: "
        f"{scan['false_timeout_examples']}"
    )
    assert scan["live_statuses"] == {"success": scan["live_hosts"]}, scan["live_statuses"]
    assert scan["silent_statuses"] == {"connection-timeout": scan["silent_addresses"]}
    assert scan["live_all_right"], "\n".join(
        [*scan["live_problems"], json.dumps(scan["problem_records"], indent=1)]
    )


def test_one_percent_loss_costs_no_live_host_and_a_short_timeout_does() -> None:
    """1 % of the packets dropped for real (TCP retransmits) at 50 ms: every live host is
    still found and right.  The control scans the same lab with a 0.1 s timeout, which the
    network cannot meet (a TLS handshake alone takes two round trips here): the same checks
    must then report false timeouts, so they can fail."""
    result = _scenario(0.05, "--loss", "1", "--knee-timeouts", "0.1", "--rtt-samples", "0")
    assert result["loss_percent"] == 1.0
    scan, control_low, control_high = result["scans"]
    print(
        f"\n[netns rtt=50 ms loss=1 %] {result['delay_method']}; dropped"
        f" {scan['packets_dropped']}/{scan['packets']} packets; {scan['hosts_per_s']} hosts/s,"
        f" peak sockets {scan['peak_sockets_in_flight']}, false timeouts {scan['false_timeouts']};"
        f" control at 0.1 s: {control_low['false_timeouts']} and {control_high['false_timeouts']}"
        " false timeouts"
    )
    # The loss is real: about 1 % of the packets on the scanned port never arrived.
    assert scan["packets"] > 1000, scan["packets"]
    assert 0.003 < scan["packets_dropped"] / scan["packets"] < 0.03, scan

    assert not scan["interrupted"]
    assert scan["records"] == scan["targets"]
    assert scan["false_timeouts"] == 0, scan["false_timeout_examples"]
    assert scan["live_statuses"] == {"success": scan["live_hosts"]}, scan["live_statuses"]
    assert scan["silent_statuses"] == {"connection-timeout": scan["silent_addresses"]}
    assert scan["live_all_right"], "\n".join(
        [*scan["live_problems"], json.dumps(scan["problem_records"], indent=1)]
    )

    for control in (control_low, control_high):
        assert control["timeout_s"] == 0.1
        assert control["records"] == control["targets"]
        assert control["false_timeouts"] > 0, control["live_statuses"]
        assert not control["live_all_right"]
