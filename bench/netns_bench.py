"""Scanner throughput and false timeouts behind a real round-trip time, 20 % silent.

    sudo .venv/bin/python bench/netns_bench.py [--rtt-ms 200] [--hosts 3000]
        [--concurrency 500,2000,5000] [--timeout 5] [--workers 1] [--method auto]

Creates a private network namespace (only loopback), puts the lab behind `tc netem` or,
where the kernel lacks netem, the userspace delay relay (tests/netns/delay_relay.py), makes
SILENT_NET drop every packet (nftables), and scans lab + silent addresses once per
concurrency.  Prints, per run: hosts/s, false timeouts (live lab hosts reported as
connection/io timeout), live hosts right, peak client sockets in flight, scanner CPU.
Only addresses in 127.0.0.0/8 inside that namespace are contacted; each scan is bounded by
the scanner's timeouts, the whole run by --max-seconds.  `--method direct` is a control
run without any delay.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.netns.namespace import NetnsUnavailable, fresh_netns, run_scenario


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rtt-ms", type=float, default=200.0)
    ap.add_argument("--jitter", type=float, default=0.1)
    ap.add_argument("--hosts", type=int, default=3000)
    ap.add_argument("--silent-share", type=float, default=0.2)
    ap.add_argument("--concurrency", default="500,2000,5000")
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--method", choices=("auto", "netem", "relay", "direct"), default="auto")
    ap.add_argument("--max-seconds", type=float, default=900.0)
    ap.add_argument("--json", action="store_true", help="print the whole result document")
    a = ap.parse_args()
    args = [
        "--rtt", str(a.rtt_ms / 1000), "--jitter", str(a.jitter), "--hosts", str(a.hosts),
        "--silent-share", str(a.silent_share), "--concurrency", a.concurrency,
        "--timeout", str(a.timeout), "--workers", str(a.workers), "--method", a.method,
    ]  # fmt: skip
    try:
        with fresh_netns("exwatch-bench") as name:
            done = run_scenario(name, args, timeout=a.max_seconds)
    except NetnsUnavailable as exc:
        print(f"skipped: {exc}")
        return 0
    if done.returncode != 0:
        print(f"scenario failed ({done.returncode}):\n{done.stderr[-3000:]}", file=sys.stderr)
        return 1
    result = json.loads(done.stdout.splitlines()[-1])
    if a.json:
        print(json.dumps(result, indent=1))
        return 0
    method = result["delay_method"]
    if "netem_refused" in result:
        method += f" (netem refused: {result['netem_refused']})"
    rtt_text = f"RTT {a.rtt_ms:.0f} ms +/- {a.jitter:.0%}"
    print(f"delay: {method}; {rtt_text}; scan port {result['scan_port']}")
    plain = result.get("plain_client")
    if plain:
        rtt = a.rtt_ms
        print(
            f"plain client ({', '.join(plain['tls_versions'])}): connect {plain['connect_ms']} ms,"
            f" connect+handshake {plain['connect_and_handshake_ms']} ms"
            f" ({plain['connect_and_handshake_ms'] / rtt:.2f} RTT), one GET"
            f" {plain['get_alone_ms']} ms ({plain['get_alone_ms'] / rtt:.2f} RTT);"
            f" exwatch on one host: {result['one_host_fingerprint_ms']:.0f} ms"
            f" ({result['one_host_fingerprint_ms'] / rtt:.1f} RTT)"
        )
    header = (
        f"{'conc':>6} {'targets':>8} {'wall s':>7} {'hosts/s':>8} {'false t/o':>9}"
        f" {'live ok':>11} {'silent t/o':>11} {'peak socks':>10} {'cpu s':>6}"
    )
    print(header)
    for s in result["scans"]:
        silent_to = s["silent_statuses"].get("connection-timeout", 0)
        print(
            f"{s['concurrency']:>6} {s['targets']:>8} {s['wall_s']:>7} {s['hosts_per_s']:>8}"
            f" {s['false_timeouts']:>9} {s['live_right']:>5}/{s['live_hosts']:<5}"
            f" {silent_to:>5}/{s['silent_addresses']:<5} {s['peak_sockets_in_flight']:>10}"
            f" {s['scanner_cpu_s']:>6}"
        )
        if s["false_timeouts"]:
            print(f"       live statuses: {s['live_statuses']}")
    if "relay" in result:
        print(f"relay: {json.dumps(result['relay'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
