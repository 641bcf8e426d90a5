"""Inside a private network namespace: the lab behind a real round-trip time, silent
addresses, and exwatch scanning it all.  Prints one JSON document on stdout.

Started by `namespace.run_scenario` (`ip netns exec NAME python scenario.py ...`); refuses to
do anything unless it is in the namespace NAME, that namespace is not its parent's, it has
no interface but loopback, and every target is in 127.0.0.0/8.

Delay: `tc netem` on lo when the kernel has it (each packet pays rtt/2 once on lo, so a
round trip pays rtt); otherwise `delay_relay.py` in its own process between the scanner
and the lab.  Silent addresses: nftables drops every packet to SILENT_NET, so connects to
them time out as they do to a firewalled host.  Loss (--loss PERCENT): nftables drops that
share of the packets to and from the scanned port at random, so the kernel's TCP really
retransmits (a lost SYN costs the 1 s initial RTO, as on the internet).

Each scan also records where the CPU went while it ran: the scanner (this process, less
its socket sampler), the relay, the lab's servers (every other process in the namespace),
and the rest of the machine (other users), so a reader can tell scanner-bound from
network-bound.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import resource
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

from exwatch.lab import Lab
from exwatch.lab.check import score
from exwatch.lab.process import raise_fd_limit
from exwatch.scan import runner as scan_runner
from exwatch.scan.admission import Admission
from exwatch.scan.job import ScanJob, execute

LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
SILENT_NET = ipaddress.IPv4Network("127.99.0.0/16")
LIVE_KINDS = ("exchange", "web")
# Sockets for 20,000 targets in flight (one each, two for a moment while one closes) plus
# the relay's two per connection: well above the usual hard limit of 20,000.
FD_LIMIT = 1 << 18
TIMEOUT_STATUSES = ("connection-timeout", "io-timeout")
RELAY = Path(__file__).with_name("delay_relay.py")


class Refused(Exception):
    """A safety precondition does not hold: nothing is sent."""


# -- where we are ---------------------------------------------------------------------
def check_own_namespace(name: str, parent_inode: int) -> dict[str, Any]:
    own = os.stat("/proc/self/ns/net").st_ino
    if own == parent_inode:
        raise Refused("still in the parent's network namespace")
    named = Path("/run/netns") / name
    if not named.exists() or named.stat().st_ino != own:
        raise Refused(f"not inside the namespace {name} that the test created")
    interfaces = [n for _, n in socket.if_nameindex()]
    if interfaces != ["lo"]:
        raise Refused(f"the namespace has interfaces besides lo: {interfaces}")
    return {"netns": name, "inode": own, "parent_inode": parent_inode, "interfaces": interfaces}


def lift_fd_limit(wanted: int) -> None:
    """Raise the open-files limit, hard one included (root in the namespace); the relay and
    the lab inherit it.  Without root or above fs.nr_open, keep the soft = hard lift."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return
        except (OSError, ValueError):
            pass
    raise_fd_limit()


def check_targets(addresses: list[str]) -> None:
    outside = [a for a in addresses if ipaddress.ip_address(a) not in LOOPBACK]
    if outside:
        raise Refused(f"targets outside 127.0.0.0/8: {outside[:5]}")


def _run(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)


# -- the network ------------------------------------------------------------------------
def try_netem(rtt: float, jitter: float) -> str | None:
    """Put netem on lo; None when it worked, else the kernel's refusal."""
    half_ms = rtt / 2 * 1000
    argv = ["tc", "qdisc", "add", "dev", "lo", "root", "netem", "limit", "1000000"]
    argv += ["delay", f"{half_ms:.3f}ms", f"{half_ms * jitter:.3f}ms"]
    done = _run(argv)
    return None if done.returncode == 0 else (done.stderr.strip() or f"exit {done.returncode}")


NFT_TABLE = "exwatch_netns"


def drop_silent(net: ipaddress.IPv4Network) -> None:
    rules = (
        f"table inet {NFT_TABLE} {{\n"
        "  chain input {\n"
        "    type filter hook input priority 0; policy accept;\n"
        f"    ip daddr {net} drop\n"
        "  }\n"
        "}\n"
    )
    done = _run(["nft", "-f", "-"], stdin=rules)
    if done.returncode != 0:
        raise RuntimeError(f"nft refused the rules: {done.stderr.strip()}")


def add_loss(port: int, percent: float) -> None:
    """Drop `percent` % of the packets to and from `port`, each direction on its own.

    On lo every packet passes the input hook once, so a rule on each port direction loses
    both the scanner's segments and the answers.  The counters (all packets seen, packets
    dropped) are read after each scan to show the loss really happened.
    """
    per_10k = round(percent * 100)
    lines = []
    for direction in ("dport", "sport"):
        lines.append(f"add rule inet {NFT_TABLE} input tcp {direction} {port} counter")
        if per_10k > 0:
            lines.append(
                f"add rule inet {NFT_TABLE} input tcp {direction} {port}"
                f" numgen random mod 10000 < {per_10k} counter drop"
            )
    done = _run(["nft", "-f", "-"], stdin="\n".join(lines) + "\n")
    if done.returncode != 0:
        raise RuntimeError(f"nft refused the loss rules: {done.stderr.strip()}")


def loss_counters() -> dict[str, int]:
    """Packets seen on the scanned port and packets dropped there, since the rules began."""
    done = _run(["nft", "-j", "list", "table", "inet", NFT_TABLE])
    seen = dropped = 0
    for item in json.loads(done.stdout or "{}").get("nftables", []):
        rule = item.get("rule")
        if not rule:
            continue
        exprs = rule.get("expr", [])
        counter = next((e["counter"] for e in exprs if "counter" in e), None)
        if counter is None:
            continue
        if any("drop" in e for e in exprs):
            dropped += counter["packets"]
        else:
            seen += counter["packets"]
    return {"packets": seen, "dropped": dropped}


def silent_addresses(count: int) -> list[str]:
    first = SILENT_NET.network_address + 1
    return [str(first + i) for i in range(count)]


class RelayProcess:
    def __init__(self, spec: dict[str, Any], workdir: Path) -> None:
        path = workdir / "relay.json"
        path.write_text(json.dumps(spec), encoding="utf-8")
        self.proc = subprocess.Popen(
            [sys.executable, str(RELAY), str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=(workdir / "relay.log").open("wb"),
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.proc.kill()
            self.proc.wait()
            log = (workdir / "relay.log").read_text("utf-8", "replace")[-1500:]
            raise RuntimeError(f"the delay relay did not start: {log}")

    def stop(self) -> dict[str, Any]:
        self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        lines = [ln for ln in (out or "").splitlines() if ln.startswith("{")]
        counters: dict[str, Any] = json.loads(lines[-1]) if lines else {}
        return counters


# -- measuring the round trip with a plain client -----------------------------------------
def measure_rtt(ip: str, port: int, samples: int) -> dict[str, Any]:
    """Connect, TLS handshake, one GET: medians in ms and as multiples of the RTT."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    connect, handshake, first_byte, versions = [], [], [], set()
    for _ in range(samples):
        t0 = time.perf_counter()
        with socket.create_connection((ip, port), timeout=10) as raw:
            t1 = time.perf_counter()
            with ctx.wrap_socket(raw) as tls:
                t2 = time.perf_counter()
                versions.add(tls.version())
                tls.sendall(f"GET /owa/ HTTP/1.1\r\nHost: {ip}\r\n\r\n".encode())
                tls.recv(1)
                t3 = time.perf_counter()
        connect.append(t1 - t0)
        handshake.append(t2 - t0)
        first_byte.append(t3 - t0)
    return {
        "tls_versions": sorted(v for v in versions if v),
        "connect_ms": round(statistics.median(connect) * 1000, 1),
        "connect_and_handshake_ms": round(statistics.median(handshake) * 1000, 1),
        "connect_handshake_get_ms": round(statistics.median(first_byte) * 1000, 1),
        "get_alone_ms": round(
            statistics.median(b - a for a, b in zip(handshake, first_byte, strict=True)) * 1000, 1
        ),
    }


# -- what admission control did ------------------------------------------------------------
class WatchedAdmission(Admission):
    """The scanner's own admission control, unchanged, remembered so that its counters
    (timeouts retried after loop lag, shrinks, the limit it reached) can be reported."""

    made: ClassVar[list[Admission]] = []

    def __init__(self, ceiling: int, **kwargs: Any) -> None:
        super().__init__(ceiling, **kwargs)
        WatchedAdmission.made.append(self)


class FixedAdmission(WatchedAdmission):
    """The ablation: a fixed limit at the ceiling, no shrinking on loop lag, no lag debt
    (so no timeout is retried).  Lag is still measured, for the report."""

    def __init__(self, ceiling: int, **kwargs: Any) -> None:
        super().__init__(ceiling, **kwargs)
        self.limit = self.ceiling

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.interval)
            self.max_lag = max(self.max_lag, loop.time() - before - self.interval)


scan_runner.Admission = WatchedAdmission  # type: ignore[attr-defined]


# -- where the CPU goes ------------------------------------------------------------------
_TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    """utime + stime of one process (all its threads), seconds; 0 when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text("ascii")
    except OSError:
        return 0.0
    fields = raw.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _machine_busy() -> float:
    """CPU seconds the whole machine spent not idle (all namespaces, all users)."""
    with open("/proc/stat", encoding="ascii") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / _TICK


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process in this network namespace."""
    own = os.stat("/proc/self/ns/net").st_ino
    parents = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if os.stat(f"/proc/{entry.name}/ns/net").st_ino != own:
                    continue
                stat = Path(f"/proc/{entry.name}/stat").read_text("ascii")
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


class CpuClock:
    """CPU seconds by role between two readings: relay, lab servers (the processes the
    lab started and their children, e.g. nginx's workers), the whole machine."""

    def __init__(self, relay_pid: int | None, lab_pids: list[int]) -> None:
        self.relay_pid = relay_pid
        self.lab_pids = set(lab_pids)

    def read(self) -> dict[str, float]:
        parents = _parents()

        def in_lab(pid: int) -> bool:
            while pid > 1:
                if pid in self.lab_pids:
                    return True
                pid = parents.get(pid, 0)
            return False

        relay = _proc_cpu(self.relay_pid) if self.relay_pid else 0.0
        lab = sum(_proc_cpu(pid) for pid in parents if in_lab(pid))
        return {"relay": relay, "lab": lab, "machine": _machine_busy()}


# -- sockets in flight ----------------------------------------------------------------------
# Sockets the scanner holds open: SYN_SENT (a silent host), ESTABLISHED, CLOSE_WAIT.  Not
# TIME_WAIT or FIN_WAIT: closed already, they hold no descriptor and no slot.
HELD = ("01", "02", "08")


class SocketSampler(threading.Thread):
    """Client TCP sockets held towards the scanned port (whole namespace): peak and mean.

    Reading /proc/net/tcp with 20,000 sockets costs CPU in this process; the thread
    measures its own CPU so that the scanner's figure can leave it out.
    """

    def __init__(self, port: int, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.port_hex = f"{port:04X}"
        self.interval = interval
        self.peak = 0
        self.peak_limit = 0
        self.samples: list[int] = []
        self.own_cpu = 0.0
        self.halt = threading.Event()

    def count(self, states: tuple[str, ...] | None = None) -> int:
        n = 0
        with open("/proc/net/tcp", encoding="ascii") as f:
            next(f)
            for line in f:
                fields = line.split(None, 4)
                # remote address:port is the third field; state 0A is LISTEN
                if not fields[2].endswith(self.port_hex) or fields[3] == "0A":
                    continue
                if states is None or fields[3] in states:
                    n += 1
        return n

    def run(self) -> None:
        while not self.halt.wait(self.interval):
            n = self.count(HELD)
            self.samples.append(n)
            self.peak = max(self.peak, n)
            if WatchedAdmission.made:  # an int read under the GIL: no lock needed
                self.peak_limit = max(self.peak_limit, WatchedAdmission.made[-1].limit)
        self.own_cpu = time.thread_time()

    def mean_while_busy(self) -> float:
        """Mean over the samples from the first to the last non-zero one."""
        busy = [i for i, n in enumerate(self.samples) if n]
        if not busy:
            return 0.0
        return statistics.fmean(self.samples[busy[0] : busy[-1] + 1])


# -- one scan ----------------------------------------------------------------------------------
def scan_once(
    lab: Lab,
    silent: list[str],
    scan_port: int,
    concurrency: int,
    timeout: float,
    args: argparse.Namespace,
    workdir: Path,
    clock: CpuClock,
    role: str = "main",
    fixed: bool = False,
) -> dict[str, Any]:
    """One scan of the whole lab.  `fixed`: the ablation without admission control; role
    "first-stage": without the Exchange follow-ups (what most internet hosts cost)."""
    scan_runner.Admission = FixedAdmission if fixed else WatchedAdmission  # type: ignore[attr-defined]
    out = workdir / f"scan-{concurrency}-{timeout}-{role}.jsonl"
    out.unlink(missing_ok=True)
    specs: list[Any] = [*lab.cidr, *silent]
    job = ScanJob(
        specs=specs,
        port=scan_port,
        timeout=timeout,
        concurrency=concurrency,
        allow_private=True,
        output=str(out),
        db=None,
        workers=args.workers,
        follow_ups=role != "first-stage",
    )
    sampler = SocketSampler(scan_port)
    WatchedAdmission.made.clear()
    packets0 = loss_counters()
    roles0 = clock.read()
    load0 = os.getloadavg()[0]
    sampler.start()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = execute(job)
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter() - t0
    sampler.halt.set()
    sampler.join()
    # The scanner's own CPU: this process less the sampling thread, plus its worker
    # processes (--workers > 1), which execute() started and waited for.
    cpu = time.process_time() - cpu0 - sampler.own_cpu
    cpu += (children1.ru_utime + children1.ru_stime) - (children0.ru_utime + children0.ru_stime)
    roles1 = clock.read()
    packets1 = loss_counters()
    roles = {k: roles1[k] - roles0[k] for k in roles0}
    gate = WatchedAdmission.made[-1] if WatchedAdmission.made else None
    gate_stats = None
    if gate is not None and args.workers == 1:
        gate_stats = {
            "retried_after_lag": gate.retries,
            "shrinks": gate.shrinks,
            "max_loop_lag_ms": round(gate.max_lag * 1000, 1),
            "loop_lag_debt_s": round(gate.debt, 2),
            "peak_limit": sampler.peak_limit,
            "final_limit": gate.limit,
        }
    WatchedAdmission.made.clear()
    ours = cpu + sampler.own_cpu + roles["relay"] + roles["lab"]
    # ESTABLISHED or CLOSE_WAIT after the scan returned: sockets the scanner never closed.
    left_open = sampler.count(("01", "08"))
    records = [json.loads(x) for x in out.read_text("utf-8").splitlines() if x]
    by_ip = {r["ip"]: r for r in records}
    truth = lab.ground_truth
    live = {ip: t for ip, t in truth.items() if t["kind"] in LIVE_KINDS}
    live_score = score(records, live)
    whole_score = score(records, truth)
    false_timeouts = sorted(
        ip for ip in live if by_ip.get(ip, {}).get("status") in TIMEOUT_STATUSES
    )
    live_statuses = Counter(by_ip.get(ip, {}).get("status", "missing") for ip in live)
    # How long a target holds its slot (Little's law: in flight = rate x time per target).
    durations = {
        "live": [by_ip[ip]["duration_ms"] for ip in live if ip in by_ip],
        "silent": [by_ip[ip]["duration_ms"] for ip in silent if ip in by_ip],
        "all": [r["duration_ms"] for r in records if r.get("duration_ms") is not None],
    }
    mean_ms = {k: round(statistics.fmean(v)) if v else None for k, v in durations.items()}
    silent_statuses = Counter(by_ip.get(ip, {}).get("status", "missing") for ip in silent)
    return {
        "role": role,
        "admission_mode": "fixed" if fixed else "adaptive",
        "concurrency": concurrency,
        "timeout_s": timeout,
        "workers": args.workers,
        "targets": len(truth) + len(silent),
        "records": len(records),
        "interrupted": summary.interrupted,
        "wall_s": round(wall, 2),
        "hosts_per_s": round((len(truth) + len(silent)) / wall, 1),
        "scanner_cpu_s": round(cpu, 2),
        "scanner_cpu_ms_per_target": round(cpu / (len(truth) + len(silent)) * 1000, 3),
        "sampler_cpu_s": round(sampler.own_cpu, 2),
        "relay_cpu_s": round(roles["relay"], 2),
        "lab_cpu_s": round(roles["lab"], 2),
        "machine_busy_s": round(roles["machine"], 2),
        # Everything else the machine did meanwhile: other users of the shared cores.
        "other_cpu_s": round(max(0.0, roles["machine"] - ours), 2),
        "loadavg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "packets": packets1["packets"] - packets0["packets"],
        "packets_dropped": packets1["dropped"] - packets0["dropped"],
        "mean_duration_ms": mean_ms,
        "peak_sockets_in_flight": sampler.peak,
        "mean_sockets_in_flight": round(sampler.mean_while_busy()),
        "admission": gate_stats,
        "sockets_left_open": left_open,
        "live_hosts": len(live),
        "live_right": live_score.right,
        "live_all_right": live_score.all_right,
        "live_problems": live_score.lines(15),
        "live_statuses": dict(live_statuses),
        "false_timeouts": len(false_timeouts),
        "false_timeout_examples": false_timeouts[:10],
        "lab_hosts": len(truth),
        "lab_right": whole_score.right,
        "lab_all_right": whole_score.all_right,
        "lab_problems": whole_score.lines(15),
        "problem_records": {
            ip: {k: by_ip.get(ip, {}).get(k) for k in ("status", "error", "http_status")}
            | {"kind": truth[ip]["kind"], "profile": truth[ip].get("profile")}
            for ip in [*whole_score.missing, *whole_score.wrong][:10]
        },
        "silent_addresses": len(silent),
        "silent_statuses": dict(silent_statuses),
    }


def one_host_fingerprint(ip: str, port: int, timeout: float, workdir: Path) -> float | None:
    """duration_ms of exwatch scanning a single Exchange host (no competition)."""
    out = workdir / "single.jsonl"
    job = ScanJob(
        specs=[ip],
        port=port,
        timeout=timeout,
        concurrency=1,
        allow_private=True,
        output=str(out),
        db=None,
    )
    execute(job)
    records = [json.loads(x) for x in out.read_text("utf-8").splitlines() if x]
    return float(records[0]["duration_ms"]) if records else None


# -- the whole scenario ----------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"where": check_own_namespace(args.netns_name, args.parent_netns)}
    lift_fd_limit(FD_LIMIT)
    if args.method == "direct":  # a control run: no delay at all
        refusal, method = None, "direct"
    else:
        refusal = None if args.method == "relay" else try_netem(args.rtt, args.jitter)
        if args.method == "netem" and refusal is not None:
            raise RuntimeError(f"tc netem is not available: {refusal}")
        method = "netem" if refusal is None else "relay"
    result["delay_method"] = method
    if refusal is not None and args.method == "auto":
        result["netem_refused"] = refusal
    result["rtt_ms"] = args.rtt * 1000
    result["jitter"] = args.jitter
    n_silent = round(args.hosts * args.silent_share / (1 - args.silent_share))
    silent = silent_addresses(n_silent)
    drop_silent(SILENT_NET)
    with tempfile.TemporaryDirectory(prefix="exwatch-netns-") as tmp:
        workdir = Path(tmp)
        lab = Lab(hosts=args.hosts, port=args.port, seed=args.seed, workdir=workdir / "lab")
        check_targets([ip for ip, _ in lab.targets] + silent)  # before anything listens
        with lab:
            relay = None
            scan_port = args.port
            if method == "relay":
                addresses = [ip for ip, t in lab.ground_truth.items() if t["kind"] != "closed"]
                spec = {
                    "rtt": args.rtt,
                    "jitter": args.jitter,
                    "listen_port": args.port + 1,
                    "upstream_port": args.port,
                    "addresses": addresses,
                    "seed": args.seed,
                }
                relay = RelayProcess(spec, workdir)
                scan_port = args.port + 1
            result["scan_port"] = scan_port
            result["loss_percent"] = args.loss
            add_loss(scan_port, args.loss)
            try:
                exchange = [ip for ip, t in lab.ground_truth.items() if t["kind"] == "exchange"]
                if args.rtt_samples:
                    result["plain_client"] = measure_rtt(exchange[0], scan_port, args.rtt_samples)
                    result["one_host_fingerprint_ms"] = one_host_fingerprint(
                        exchange[0], scan_port, args.timeout, workdir
                    )
                servers = [lab.server_proc, lab.hostile_proc]
                clock = CpuClock(
                    relay.proc.pid if relay is not None else None,
                    [proc.pid for proc in servers if proc is not None],
                )
                runs = [(c, args.timeout, "main", False) for c in args.concurrency]
                for t in args.knee_timeouts:
                    runs += [(args.control_concurrency, t, "knee-control", False)]
                    runs += [(args.knee_concurrency, t, "knee", False)]
                runs += [(c, args.timeout, "fixed", True) for c in args.fixed_limits]
                if args.first_stage:
                    runs += [(max(args.concurrency), args.timeout, "first-stage", False)]
                result["scans"] = [
                    scan_once(lab, silent, scan_port, c, t, args, workdir, clock, role, fixed)
                    for c, t, role, fixed in runs
                ]
            finally:
                if relay is not None:
                    result["relay"] = relay.stop()
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--netns-name", required=True)
    ap.add_argument("--parent-netns", type=int, required=True)
    ap.add_argument("--rtt", type=float, default=0.05, help="round-trip time, seconds")
    ap.add_argument("--jitter", type=float, default=0.1, help="+/- share of the delay")
    ap.add_argument("--method", choices=("auto", "netem", "relay", "direct"), default="auto")
    ap.add_argument("--hosts", type=int, default=300)
    ap.add_argument("--silent-share", type=float, default=0.2)
    ap.add_argument("--port", type=int, default=21443)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=1, help="scanner processes")
    ap.add_argument("--rtt-samples", type=int, default=8)
    ap.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[2000])
    ap.add_argument("--loss", type=float, default=0.0, help="percent of packets dropped")
    ap.add_argument(
        "--knee-timeouts",
        type=lambda s: [float(x) for x in s.split(",") if x],
        default=[],
        help="timeouts to try, each at --control-concurrency and at --knee-concurrency",
    )
    ap.add_argument(
        "--fixed-limits",
        type=lambda s: [int(x) for x in s.split(",") if x],
        default=[],
        help="the ablation: scans at these fixed limits, without admission control",
    )
    ap.add_argument(
        "--first-stage", action="store_true", help="also scan without the Exchange follow-ups"
    )
    ap.add_argument("--control-concurrency", type=int, default=300)
    ap.add_argument("--knee-concurrency", type=int, default=20000)
    args = ap.parse_args()
    try:
        result = run(args)
    except Refused as exc:
        print(json.dumps({"refused": str(exc)}))
        return 3
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
