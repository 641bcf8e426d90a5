"""exwatch's own work per host, with the network taken out.

A lab scan is recorded once (each host's certificate and the bytes of every response), then
the same targets are scanned again with a client whose connections replay those bytes:
no sockets, no TLS, no event-loop waits, so what is left is exwatch's own Python (probes,
HTTP parsing, fingerprints, certificate fields, records, output), measured without the
noise of a handshake.  `bench/floor.py` gives the whole cost against the floor; this gives
the part of it that exwatch's code decides, and `valgrind --tool=callgrind` over it counts
the same work in instructions, whatever the machine is doing:

    .venv/bin/python bench/own_cost.py [--hosts 2000] [--repeat 7] [--stage first|full|both]
    .venv/bin/python bench/own_cost.py --record /tmp/rec   # save the recording, then:
    valgrind --tool=callgrind .venv/bin/python bench/own_cost.py --replay /tmp/rec --repeat 1
    valgrind --tool=callgrind .venv/bin/python bench/own_cost.py --replay /tmp/rec --repeat 2
    # (the difference of the two totals, over the hosts, is one replayed scan per host)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import pickle
import resource
import statistics
from pathlib import Path
from typing import Any

from floor import fresh_certificates, lab_job  # bench/, beside this script

from exwatch.lab import Lab
from exwatch.net import client as client_mod
from exwatch.net import tls
from exwatch.net.http import Response
from exwatch.net.wire import Wire
from exwatch.scan.job import execute

Recording = dict[str, Any]  # ips, port, per-ip certificate triple, per-ip response bytes


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _encode(r: Response) -> bytes:
    """The response again as bytes, framed by Content-Length (what read_response reads)."""
    head = f"{r.version} {r.status} {r.reason}\r\n" + "".join(
        f"{k}: {v}\r\n"
        for k, v in r.headers
        if k not in ("content-length", "transfer-encoding", "connection")
    )
    close = "" if r.keep_alive else "Connection: close\r\n"
    framing = f"{close}Content-Length: {len(r.body)}\r\n\r\n"
    return (head + framing).encode("latin-1") + r.body


def record(hosts: int, port: int, follow_ups: bool) -> Recording:
    """Scan the lab's answering hosts once, keeping each host's certificate and responses."""
    certs: dict[str, tuple[bytes, Any, Any]] = {}
    responses: dict[str, list[bytes]] = collections.defaultdict(list)
    connect, exchange = client_mod.HttpClient.connect, client_mod.HttpClient._exchange

    async def recording_connect(self: client_mod.HttpClient) -> None:
        await connect(self)
        assert self._wire is not None
        ssl_object = self._wire.get_extra_info("ssl_object")
        if ssl_object is not None and self.ip not in certs:
            der = ssl_object.getpeercert(binary_form=True)
            certs[self.ip] = (der, ssl_object.cipher(), ssl_object.version())

    async def recording_exchange(self: client_mod.HttpClient, data: bytes, method: str) -> Any:
        response = await exchange(self, data, method)
        responses[self.ip].append(_encode(response))
        return response

    with Lab(hosts=hosts, port=port, seed=1) as lab:
        ips = [ip for ip, t in lab.ground_truth.items() if t["kind"] in ("exchange", "web")]
        client_mod.HttpClient.connect = recording_connect  # type: ignore[method-assign]
        client_mod.HttpClient._exchange = recording_exchange  # type: ignore[method-assign]
        try:
            execute(lab_job(ips, lab.port, follow_ups))
        finally:
            client_mod.HttpClient.connect = connect  # type: ignore[method-assign]
            client_mod.HttpClient._exchange = exchange  # type: ignore[method-assign]
        return {"ips": ips, "port": lab.port, "certs": certs, "responses": dict(responses)}


class _Session:
    """What session_info reads of a TLS session, from the recording."""

    def __init__(self, cert: tuple[bytes, Any, Any]) -> None:
        self._cert = cert

    def getpeercert(self, binary_form: bool = False) -> bytes:
        return self._cert[0]

    def cipher(self) -> Any:
        return self._cert[1]

    def version(self) -> Any:
        return self._cert[2]


class _Replay(asyncio.Transport):
    """A connection that answers each request with the host's next recorded response."""

    def __init__(self, wire: Wire, answers: collections.deque[bytes], session: Any) -> None:
        super().__init__()
        self._wire, self._answers, self._session = wire, answers, session

    def write(self, data: Any) -> None:
        self._wire.data_received(self._answers.popleft() if self._answers else b"")

    def abort(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._session if name == "ssl_object" else default


def replay(rec: Recording, follow_ups: bool, repeat: int) -> list[float]:
    """ms of CPU per host for each of `repeat` replayed scans (after one warm-up)."""
    queues: dict[str, collections.deque[bytes]] = {}
    connect = client_mod.HttpClient.connect

    async def replaying_connect(self: client_mod.HttpClient) -> None:
        wire = Wire(self._loop, self.limits.max_header_bytes)
        cert = rec["certs"].get(self.ip)
        session = _Session(cert) if cert is not None else None
        wire.connection_made(_Replay(wire, queues[self.ip], session))
        self._wire = wire
        self.connections += 1
        if self.use_tls and self.tls is None:
            self.tls = tls.session_info(session)  # type: ignore[arg-type]

    client_mod.HttpClient.connect = replaying_connect  # type: ignore[method-assign]
    try:
        out = []
        for i in range(repeat + 1):
            queues.clear()
            queues.update({ip: collections.deque(v) for ip, v in rec["responses"].items()})
            fresh_certificates()
            before = _cpu()
            execute(lab_job(rec["ips"], rec["port"], follow_ups))
            if i:
                out.append((_cpu() - before) / len(rec["ips"]) * 1e3)
        return out
    finally:
        client_mod.HttpClient.connect = connect  # type: ignore[method-assign]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--hosts", type=int, default=2000)
    ap.add_argument("--port", type=int, default=19894)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--stage", choices=("first", "full", "both"), default="both")
    ap.add_argument("--record", type=Path, help="record to this folder and stop")
    ap.add_argument("--replay", type=Path, help="replay the recording in this folder")
    args = ap.parse_args()
    stages = ["first", "full"] if args.stage == "both" else [args.stage]
    recordings: dict[str, Recording] = {}
    for stage in stages:
        if args.replay is not None:
            data = (args.replay / f"{stage}.pickle").read_bytes()
            recordings[stage] = pickle.loads(data)  # noqa: S301 (this script's own recording)
        else:
            recordings[stage] = record(args.hosts, args.port, stage == "full")
        if args.record is not None:
            args.record.mkdir(parents=True, exist_ok=True)
            (args.record / f"{stage}.pickle").write_bytes(pickle.dumps(recordings[stage]))
    if args.record is not None:
        return
    os.sched_setaffinity(0, {0})
    for stage, rec in recordings.items():
        runs = replay(rec, stage == "full", args.repeat)
        requests = sum(map(len, rec["responses"].values())) / len(rec["ips"])
        print(
            f"{stage:5} stage: {len(rec['ips'])} hosts, {requests:.2f} requests per host: "
            f"exwatch's own work {statistics.median(runs):.4f} ms CPU per host "
            f"(median of {len(runs)}; {min(runs):.4f}-{max(runs):.4f})"
        )


if __name__ == "__main__":
    main()
