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


def _scenario(rtt_s: float) -> dict[str, Any]:
    args = ["--rtt", str(rtt_s), "--jitter", "0.1", "--hosts", str(HOSTS)]
    args += ["--silent-share", "0.2", "--concurrency", str(CONCURRENCY)]
    args += ["--timeout", str(TIMEOUT_S), "--rtt-samples", "6"]
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
