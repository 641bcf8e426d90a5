"""Scanner throughput, sockets in flight and false timeouts under internet-like conditions.

    sudo .venv/bin/python bench/netns_bench.py [--rtt-ms 50,200] [--loss 1] [--hosts 3000]
        [--concurrency 5000,20000] [--timeout 5] [--knee-timeouts 2,1,0.5]
        [--knee-rtt-ms 200] [--fixed-limits 1000,2000] [--workers 1] [--method auto]
        [--machines 1,2,4,8] [--save run.json | --load run.json]

For each round-trip time, creates a private network namespace (only loopback), puts the lab
behind `tc netem` or, where the kernel lacks netem, the userspace delay relay
(tests/netns/delay_relay.py), makes SILENT_NET (20 % of the targets) drop every packet and
drops --loss % of the packets to and from the scanned port at random (nftables, so TCP
really retransmits), then scans lab + silent addresses once per concurrency ceiling.

Per scan it prints hosts/s, peak and mean client sockets in flight, false timeouts (live
lab hosts recorded as connection/io timeout), live hosts right, timeouts the scanner
retried because its event loop lagged, and where the CPU went: the scanner, the relay, the
lab's servers and everything else on the machine (other users), in cores.

The knee: at each --knee-timeouts value (at the --knee-rtt-ms RTTs) it scans twice, at a
low ceiling (--control-concurrency: the CPU is idle, so a timeout there is the network's
doing, e.g. a SYN lost twice) and at --knee-concurrency.  False timeouts of the second
beyond the first are the scanner's.  The knee is the longest timeout at which they appear.
The ablation (--fixed-limits): scans at fixed limits with admission control off (no
shrinking on loop lag, no retry of timeouts the loop may have caused), to show where a
fixed limit starts turning live hosts into timeouts.

Last, the projection for 50 million HTTPS hosts on one 2-core machine and on N machines of
a distributed census, from this run's CPU per target and time per target, with every
assumption printed.  Only addresses in 127.0.0.0/8 inside the namespaces are contacted;
each scan is bounded by the scanner's timeouts, each namespace by --max-seconds.
`--method direct` is a control run without any delay.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.netns.namespace import NetnsUnavailable, fresh_netns, run_scenario

HOSTS_50M = 50_000_000
# A census's workers lose some of one machine's scan rate to task tails (docs/performance.md
# §10: census/scan 0.94-0.96 with four processes per core); 0.9 leaves room for more.
CENSUS_EFFICIENCY = 0.9


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def run_rtt(a: argparse.Namespace, rtt_ms: float) -> dict[str, Any] | None:
    args = [
        "--rtt", str(rtt_ms / 1000), "--jitter", str(a.jitter), "--hosts", str(a.hosts),
        "--silent-share", str(a.silent_share), "--concurrency", ",".join(map(str, a.concurrency)),
        "--timeout", str(a.timeout), "--workers", str(a.workers), "--method", a.method,
        "--loss", str(a.loss), "--control-concurrency", str(a.control_concurrency),
        "--knee-concurrency", str(a.knee_concurrency),
        "--fixed-limits", ",".join(map(str, a.fixed_limits)),
        *(["--first-stage"] if a.first_stage else []),
    ]  # fmt: skip
    if rtt_ms in a.knee_rtt_ms and a.knee_timeouts:
        args += ["--knee-timeouts", ",".join(map(str, a.knee_timeouts))]
    with fresh_netns("exwatch-bench") as name:
        done = run_scenario(name, args, timeout=a.max_seconds)
    if done.returncode != 0:
        print(f"scenario failed ({done.returncode}):\n{done.stderr[-3000:]}", file=sys.stderr)
        return None
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def _role(result: dict[str, Any], role: str, a: argparse.Namespace) -> list[dict[str, Any]]:
    """A result's scans of one role: main, knee-control, knee or fixed (the ablation)."""
    scans: list[dict[str, Any]] = result["scans"]
    if all("role" in s for s in scans):
        return [s for s in scans if s["role"] == role]
    # Saved before scans carried their role: the main ones first, then control/knee pairs.
    main = int(result.get("main_scans", len(a.concurrency)))
    if role == "main":
        return scans[:main]
    rest = scans[main:]
    return rest[0::2] if role == "knee-control" else rest[1::2] if role == "knee" else []


def _cores(seconds: float, wall: float) -> str:
    return f"{seconds / wall:.2f}" if wall else "-"


def print_scans(result: dict[str, Any], scans: list[dict[str, Any]]) -> None:
    header = (
        f"{'RTT':>4} {'loss':>4} {'ceil':>6} {'t/o':>4} {'targets':>7} {'wall s':>6}"
        f" {'hosts/s':>7} {'peak sk':>7} {'mean sk':>7} {'false':>5} {'live ok':>11}"
        f" {'silent t/o':>11} {'retry':>5} {'scan ms/t':>9} {'scan':>5} {'relay':>5}"
        f" {'lab':>5} {'other':>5} {'drop/pkts':>13}"
    )
    print(header)
    for s in scans:
        silent_to = s["silent_statuses"].get("connection-timeout", 0)
        wall = s["wall_s"]
        retried = (s.get("admission") or {}).get("retried_after_lag", "-")
        print(
            f"{result['rtt_ms']:>4.0f} {result['loss_percent']:>3g}% {s['concurrency']:>6}"
            f" {s['timeout_s']:>4g} {s['targets']:>7} {wall:>6.1f} {s['hosts_per_s']:>7.0f}"
            f" {s['peak_sockets_in_flight']:>7} {s['mean_sockets_in_flight']:>7}"
            f" {s['false_timeouts']:>5} {s['live_right']:>5}/{s['live_hosts']:<5}"
            f" {silent_to:>5}/{s['silent_addresses']:<5} {retried:>5}"
            f" {s['scanner_cpu_ms_per_target']:>9.2f} {_cores(s['scanner_cpu_s'], wall):>5}"
            f" {_cores(s['relay_cpu_s'], wall):>5} {_cores(s['lab_cpu_s'], wall):>5}"
            f" {_cores(s['other_cpu_s'], wall):>5}"
            f" {s['packets_dropped']:>5}/{s['packets']:<7}"
        )
        if s["false_timeouts"]:
            print(f"      live statuses: {s['live_statuses']}")


def knee_rows(result: dict[str, Any], a: argparse.Namespace) -> list[dict[str, Any]]:
    """Pair each knee timeout's control scan with its high-ceiling scan."""
    rows = []
    pairs = zip(_role(result, "knee-control", a), _role(result, "knee", a), strict=True)
    for control, high in pairs:
        live = high["live_hosts"]
        rows.append(
            {
                "rtt_ms": result["rtt_ms"],
                "timeout_s": high["timeout_s"],
                "control_concurrency": control["concurrency"],
                "control_false": control["false_timeouts"],
                "control_hosts_per_s": control["hosts_per_s"],
                "ceiling": high["concurrency"],
                "false": high["false_timeouts"],
                "excess": high["false_timeouts"] - control["false_timeouts"],
                "excess_share": (high["false_timeouts"] - control["false_timeouts"]) / live,
                "hosts_per_s": high["hosts_per_s"],
                "peak_sockets": high["peak_sockets_in_flight"],
                "retried": (high.get("admission") or {}).get("retried_after_lag"),
                "scanner_cores": high["scanner_cpu_s"] / high["wall_s"],
                "other_cores": high["other_cpu_s"] / high["wall_s"],
                "live": live,
            }
        )
    return rows


def print_knee(rows: list[dict[str, Any]], threshold: float) -> None:
    if not rows:
        return
    print(
        f"\nknee: false timeouts at a low ceiling (the network's) and at a high one;"
        f" the excess is the scanner's (knee: excess above {threshold:.1%} of live hosts)"
    )
    print(
        f"{'RTT':>4} {'t/o':>5} {'control':>15} {'ceiling':>7} {'false':>6} {'excess':>7}"
        f" {'hosts/s':>7} {'peak sk':>7} {'retry':>5} {'scan':>5} {'other':>5}"
    )
    for r in rows:
        control = f"{r['control_false']} @{r['control_concurrency']}"
        print(
            f"{r['rtt_ms']:>4.0f} {r['timeout_s']:>5g} {control:>15} {r['ceiling']:>7}"
            f" {r['false']:>6} {r['excess']:>7} {r['hosts_per_s']:>7.0f}"
            f" {r['peak_sockets']:>7} {r['retried'] if r['retried'] is not None else '-':>5}"
            f" {r['scanner_cores']:>5.2f} {r['other_cores']:>5.2f}"
        )
    by_rtt: dict[float, list[dict[str, Any]]] = {}
    for r in rows:
        by_rtt.setdefault(r["rtt_ms"], []).append(r)
    for rtt, group in by_rtt.items():
        bad = [r for r in group if r["excess_share"] > threshold]
        good = [r for r in group if r["excess_share"] <= threshold]
        if not bad:
            shortest = min(r["timeout_s"] for r in group)
            print(f"  RTT {rtt:.0f} ms: no knee down to a {shortest:g} s timeout")
            continue
        knee = max(bad, key=lambda r: r["timeout_s"])
        safe = [r for r in good if r["timeout_s"] > knee["timeout_s"]]
        above = f"; clean at {min(r['timeout_s'] for r in safe):g} s" if safe else ""
        print(
            f"  RTT {rtt:.0f} ms: knee at a {knee['timeout_s']:g} s timeout"
            f" ({knee['timeout_s'] * 1000 / rtt:.0f} RTT), {knee['hosts_per_s']:.0f} hosts/s,"
            f" {knee['excess']} of {knee['live']} live hosts timed out by the scanner{above}"
        )


def projection(results: list[dict[str, Any]], a: argparse.Namespace) -> dict[str, Any] | None:
    """50 M hosts from the main scans (not the knee's): CPU and time per target."""
    scans = [s for r in results for s in _role(r, "main", a)]
    if not scans:
        return None
    total_targets = sum(s["targets"] for s in scans)
    cpu_ms = a.cpu_ms_per_host or (sum(s["scanner_cpu_s"] for s in scans) / total_targets * 1000)
    live_ms = max(s["mean_duration_ms"]["live"] or 0 for s in scans)
    silent_ms = a.timeout * 1000  # a silent address holds its slot for the whole timeout
    per_target_s = (a.silent_share * silent_ms + (1 - a.silent_share) * live_ms) / 1000
    cpu_rate = a.cores * a.core_use / (cpu_ms / 1000)
    socket_rate = a.ceiling_per_machine / per_target_s
    rate = min(cpu_rate, socket_rate)
    return {
        "cpu_ms_per_target": cpu_ms,
        "live_ms": live_ms,
        "per_target_s": per_target_s,
        "cpu_rate": cpu_rate,
        "socket_rate": socket_rate,
        "rate": rate,
        "bound": "CPU" if cpu_rate <= socket_rate else "sockets in flight",
        "sockets_needed": rate * per_target_s,
    }


def _cpu_source(a: argparse.Namespace) -> str:
    if getattr(a, "cpu_from_first_stage", False):
        return "the first stage's, measured here"
    return "given with --cpu-ms-per-host" if a.cpu_ms_per_host else "measured here"


def _probes(a: argparse.Namespace) -> str:
    if getattr(a, "cpu_from_first_stage", False):
        return (
            "probes per host: the first stage only (one GET; the Exchange follow-ups that"
            " under 1 % of internet hosts need are left out)"
        )
    return (
        "probes per host as the lab's mix asks (56 % Exchange: full probe set, 1-7 requests;"
        " others one GET) - on the internet under 1 % are Exchange, so the CPU per host"
        " here is an upper bound"
    )


def print_projection(p: dict[str, Any], a: argparse.Namespace) -> None:
    hours = HOSTS_50M / p["rate"] / 3600
    print("\nprojection: 50 million HTTPS hosts")
    print(
        f"  assumptions: {a.silent_share:.0%} silent addresses holding a slot for the"
        f" {a.timeout:g} s timeout; live targets {p['live_ms'] / 1000:.2f} s each (the slowest"
        f" RTT's mean here, loss included); {p['per_target_s']:.2f} s per target on average;"
        f" {_probes(a)}; scanner CPU {p['cpu_ms_per_target']:.2f} ms per"
        f" target ({_cpu_source(a)});"
        f" {a.cores}"
        f" cores used at {a.core_use:.0%} by scanner workers (no relay or lab on a real"
        f" machine); at most {a.ceiling_per_machine:,} targets in flight per machine"
    )
    print(
        f"  one machine: CPU allows {p['cpu_rate']:.0f}/s, sockets allow"
        f" {p['socket_rate']:.0f}/s -> {p['rate']:.0f} hosts/s ({p['bound']}-bound),"
        f" {p['sockets_needed']:.0f} sockets in flight, {hours:.1f} h for 50 M"
    )
    print(f"  N machines (census, {a.census_efficiency:.0%} of N x one machine):")
    for n in a.machines:
        rate_n = p["rate"] * (n if n == 1 else n * a.census_efficiency)
        print(f"    N={n:>3}: {rate_n:>8.0f} hosts/s, {HOSTS_50M / rate_n / 3600:>6.1f} h")
    for target_h in (24, 6, 1):
        need = HOSTS_50M / (target_h * 3600) / (p["rate"] * a.census_efficiency)
        print(f"    a pass in {target_h:>2} h needs {max(1, int(-(-need // 1)))} machine(s)")


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rtt-ms", type=_floats, default=[50.0, 200.0])
    ap.add_argument("--jitter", type=float, default=0.1)
    ap.add_argument("--loss", type=float, default=1.0, help="percent of packets dropped")
    ap.add_argument("--hosts", type=int, default=3000)
    ap.add_argument("--silent-share", type=float, default=0.2)
    ap.add_argument("--concurrency", type=_ints, default=[5000, 20000])
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--knee-timeouts", type=_floats, default=[2.0, 1.0, 0.5])
    ap.add_argument("--knee-rtt-ms", type=_floats, default=[200.0])
    ap.add_argument(
        "--first-stage",
        action="store_true",
        help="also scan at the highest ceiling without the Exchange follow-ups (first stage"
        " only: one GET per host, what most internet hosts cost); the projection uses both",
    )
    ap.add_argument("--control-concurrency", type=int, default=300)
    ap.add_argument(
        "--fixed-limits",
        type=_ints,
        default=[],
        help="the ablation: also scan at these fixed limits without admission control",
    )
    ap.add_argument("--knee-concurrency", type=int, default=20000)
    ap.add_argument("--knee-threshold", type=float, default=0.005, help="share of live hosts")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--method", choices=("auto", "netem", "relay", "direct"), default="auto")
    ap.add_argument("--max-seconds", type=float, default=1800.0)
    ap.add_argument("--cores", type=int, default=2, help="projection: cores per machine")
    ap.add_argument("--core-use", type=float, default=0.8, help="projection: usable share")
    ap.add_argument("--ceiling-per-machine", type=int, default=20000)
    ap.add_argument("--cpu-ms-per-host", type=float, default=None, help="projection override")
    ap.add_argument("--census-efficiency", type=float, default=CENSUS_EFFICIENCY)
    ap.add_argument("--machines", type=_ints, default=[1, 2, 4, 8, 16])
    ap.add_argument("--json", action="store_true", help="print the whole result documents")
    ap.add_argument("--save", type=Path, help="also write the result documents to this file")
    ap.add_argument(
        "--load", type=Path, help="print the tables of a run saved with --save (no scanning)"
    )
    a = ap.parse_args()
    results: list[dict[str, Any]] = []
    if a.load:
        results = json.loads(a.load.read_text("utf-8"))
    for rtt_ms in [] if a.load else a.rtt_ms:
        try:
            result = run_rtt(a, rtt_ms)
        except NetnsUnavailable as exc:
            print(f"skipped: {exc}")
            return 0
        if result is None:
            return 1
        results.append(result)
    if a.save:
        a.save.write_text(json.dumps(results, indent=1), "utf-8")
    if a.json:
        print(json.dumps(results, indent=1))
        return 0
    first = results[0]
    method = first["delay_method"]
    if "netem_refused" in first:
        method += f" (netem refused: {first['netem_refused']})"
    print(f"delay: {method}; jitter +/-{a.jitter:.0%}; scan port {first['scan_port']}")
    for r in results:
        plain = r.get("plain_client")
        if plain:
            rtt = r["rtt_ms"]
            print(
                f"RTT {rtt:.0f} ms, plain client ({', '.join(plain['tls_versions'])}): connect"
                f" + handshake {plain['connect_and_handshake_ms']} ms"
                f" ({plain['connect_and_handshake_ms'] / rtt:.2f} RTT), one GET"
                f" {plain['get_alone_ms']} ms ({plain['get_alone_ms'] / rtt:.2f} RTT);"
                f" exwatch on one host: {r['one_host_fingerprint_ms']:.0f} ms"
                f" ({r['one_host_fingerprint_ms'] / rtt:.1f} RTT)"
            )
    print("CPU columns are cores (CPU s / wall s): scanner, relay, lab servers, other users")
    for r in results:
        print_scans(r, _role(r, "main", a))
        if "relay" in r:
            print(f"  relay counters: {json.dumps(r['relay'])}")
    rows = [row for r in results for row in knee_rows(r, a)]
    if rows:
        print_knee(rows, a.knee_threshold)
        print("knee scans in full:")
        for r in results:
            knee = _role(r, "knee-control", a) + _role(r, "knee", a)
            if knee:
                print_scans(r, sorted(knee, key=lambda s: (-s["timeout_s"], s["concurrency"])))
    fixed = [(r, _role(r, "fixed", a)) for r in results]
    if any(scans for _, scans in fixed):
        print(
            "\nablation: fixed limits without admission control (no shrinking on loop lag,"
            " no retry of a timeout during lag), against the adaptive scans above"
        )
        for r, scans in fixed:
            if scans:
                print_scans(r, scans)
    first = [(r, _role(r, "first-stage", a)) for r in results]
    if any(scans for _, scans in first):
        print("\nfirst stage only (no Exchange follow-ups; live hosts' builds are not read):")
        for r, scans in first:
            if scans:
                print_scans(r, scans)
    p = projection(results, a)
    if p is not None:
        print_projection(p, a)
    first_scans = [s for _, scans in first for s in scans]
    if first_scans and not a.cpu_ms_per_host:
        cpu_ms = sum(s["scanner_cpu_s"] for s in first_scans) / sum(
            s["targets"] for s in first_scans
        )
        a.cpu_ms_per_host = cpu_ms * 1000
        a.cpu_from_first_stage = True
        p = projection(results, a)
        if p is not None:
            print(f"\nthe same with the first stage's CPU per target, {a.cpu_ms_per_host:.2f} ms:")
            print_projection(p, a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
