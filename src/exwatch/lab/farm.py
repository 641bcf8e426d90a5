"""`Lab`: build the farm's files, run the web backend and the hostile server, clean up.

The web-facing hosts are served by nginx (fast; thousands of hosts) or by the pure-Python
backend (`exwatch.lab.python_backend`, no system package needed); both read the same route
table (`exwatch.lab.routes`) and answer alike.  `backend="auto"` takes nginx when found.

    with Lab(hosts=40, port=18443, seed=1) as lab:
        lab.targets        # [(ip, port), ...] every address of the lab, in order
        lab.ground_truth   # {ip: expected record}, see exwatch.lab.plan.expected
        lab.cidr           # ["127.16.0.1/32", "127.16.0.2/31", ...] covering exactly the lab

Only loopback addresses are ever used (make_plan refuses anything else).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from exwatch.errors import ExwatchError
from exwatch.lab import certs, nginx_conf, routes
from exwatch.lab.plan import DEFAULT_BASE, Plan, ground_truth, make_plan
from exwatch.lab.process import die_with_parent

START_TIMEOUT = 60.0
BACKENDS = ("auto", "nginx", "python")
_SHM = "/dev/shm"  # noqa: S108 (mkdtemp below makes a private 0700 directory in it)


class LabError(ExwatchError):
    """The lab could not be started (nginx missing, port taken, a child died)."""


def find_nginx() -> str | None:
    """The nginx binary, also where root's PATH has it but a user's does not."""
    found = shutil.which("nginx")
    if found:
        return found
    for candidate in ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _tls_ready(ip: str, port: int, timeout: float) -> bool:
    """A full handshake succeeds: nginx's worker (not just the master's socket) is up."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((ip, port), timeout=timeout) as raw, ctx.wrap_socket(raw):
            return True
    except (OSError, ssl.SSLError):
        return False


def _tcp_open(ip: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return True
    except OSError:
        return False


class Lab:
    """A farm of simulated servers on 127.x.y.z; a context manager (start/stop)."""

    def __init__(
        self,
        hosts: int = 200,
        port: int = 8443,
        seed: int = 1,
        workdir: str | Path | None = None,
        *,
        base: str = DEFAULT_BASE,
        workers: int = 1,
        nginx_cpu: int | None = None,
        ground_truth_path: str | Path | None = None,
        backend: str = "auto",
        access_log: bool = False,
    ) -> None:
        if not 1 <= port <= 65535:
            raise LabError(f"port out of range: {port}")
        if backend not in BACKENDS:
            raise LabError(f"unknown lab backend {backend!r} (one of {', '.join(BACKENDS)})")
        # What serves the web-facing hosts: "nginx" or "python" ("auto" decided here).
        self.backend = backend if backend != "auto" else ("nginx" if find_nginx() else "python")
        try:
            self.plan: Plan = make_plan(hosts, seed=seed, port=port, base=base)
        except ValueError as exc:
            raise LabError(str(exc)) from exc
        self.port = port
        self.workers = workers
        self.nginx_cpu = nginx_cpu
        self.access_log = access_log  # nginx only: one line per request, see access_log_path
        self._own_workdir = workdir is None
        self._workdir_arg = None if workdir is None else Path(workdir)
        self.workdir: Path | None = None
        self._gt_arg = None if ground_truth_path is None else Path(ground_truth_path)
        self.ground_truth_path: Path | None = None
        self._doc: dict[str, Any] = ground_truth(self.plan)
        self._procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []
        self.nginx_proc: subprocess.Popen[bytes] | None = None
        self.server_proc: subprocess.Popen[bytes] | None = None  # nginx or the Python backend
        self.hostile_proc: subprocess.Popen[bytes] | None = None

    # -- what tests and benchmarks read ------------------------------------------------
    @property
    def targets(self) -> list[tuple[str, int]]:
        return [(h.ip, self.port) for h in self.plan.hosts]

    @property
    def ground_truth(self) -> dict[str, dict[str, Any]]:
        hosts: dict[str, dict[str, Any]] = self._doc["hosts"]
        return hosts

    @property
    def ground_truth_document(self) -> dict[str, Any]:
        return self._doc

    @property
    def cidr(self) -> list[str]:
        return self.plan.cidrs

    @property
    def access_log_path(self) -> Path:
        """nginx's request log when the lab was made with `access_log=True`."""
        assert self.workdir is not None, "the lab is not started"
        return self.workdir / "logs" / "access.log"

    # -- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> Lab:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        served = [h for h in self.plan.hosts if h.serves_tls_by_nginx]
        nginx = find_nginx() if served and self.backend == "nginx" else None
        if served and self.backend == "nginx" and nginx is None:
            raise LabError("nginx is not installed (Debian: apt-get install -y nginx)")
        if self._workdir_arg is None:
            # tmpfs when there is one: thousands of small files are written at start.
            shm = _SHM if os.access(_SHM, os.W_OK) else None
            self.workdir = Path(tempfile.mkdtemp(prefix="exwatch-lab-", dir=shm))
        else:
            self.workdir = self._workdir_arg.resolve()
            self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._write_files()
            self._start_hostile()
            if nginx is not None:
                self._start_nginx(nginx, served[0].ip)
            elif served:
                self._start_python()
            self._check_closed()
        except BaseException:
            self.stop()
            raise

    def _write_files(self) -> None:
        assert self.workdir is not None
        wd = self.workdir
        (wd / "certs").mkdir(exist_ok=True)
        key = certs.new_key()
        certs.write_key(key, wd / "certs" / "key.pem")
        for serial, h in enumerate(self.plan.hosts, start=1):
            if h.serves_tls_by_nginx and h.tls_cn:
                pem = certs.self_signed(key, h.tls_cn, h.tls_san, h.ip, serial)
                (wd / "certs" / f"{h.ip}.pem").write_bytes(pem)
        hostile_cert = certs.self_signed(key, "lab.invalid", ("lab.invalid",), "127.0.0.2", 10**9)
        (wd / "certs" / "hostile.pem").write_bytes(hostile_cert)
        (wd / "logs").mkdir(exist_ok=True)
        if self.backend == "nginx":
            log = self.access_log_path if self.access_log else None
            conf = nginx_conf.render(self.plan, wd, self.workers, access_log=log)
            (wd / "nginx.conf").write_text(conf, "utf-8")
        else:
            sites = routes.build_sites(self.plan, wd)
            python_spec = {
                "port": self.port,
                "key": str(wd / "certs" / "key.pem"),
                "common": str(wd / "www" / "common"),
                "pid_file": str(wd / "python-backend.pid"),
                "sites": [dataclasses.asdict(s) for s in sites],
            }
            (wd / "python-backend.json").write_text(json.dumps(python_spec), "utf-8")
        self.ground_truth_path = (
            self._gt_arg.resolve() if self._gt_arg else wd / "ground-truth.json"
        )
        self.ground_truth_path.parent.mkdir(parents=True, exist_ok=True)
        self.ground_truth_path.write_text(json.dumps(self._doc, indent=1) + "\n", "utf-8")
        spec = {
            "port": self.port,
            "cert": str(wd / "certs" / "hostile.pem"),
            "key": str(wd / "certs" / "key.pem"),
            "hosts": [
                {"ip": h.ip, "behaviour": h.hostile_behaviour}
                for h in self.plan.hosts
                if h.hostile_behaviour is not None
            ],
        }
        (wd / "hostile.json").write_text(json.dumps(spec), "utf-8")

    def _spawn(
        self, argv: list[str], log_name: str, stdout_pipe: bool = False
    ) -> subprocess.Popen[bytes]:
        assert self.workdir is not None
        log = (self.workdir / "logs" / log_name).open("wb")
        self._logs.append(log)
        proc = subprocess.Popen(  # noqa: S603 (fixed argv: nginx or this package's module)
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else log,
            stderr=log,
            preexec_fn=die_with_parent,
        )
        self._procs.append(proc)
        return proc

    def _log_tail(self, *names: str) -> str:
        assert self.workdir is not None
        text = []
        for name in names:
            path = self.workdir / "logs" / name
            if path.exists():
                text.append(path.read_text("utf-8", "replace")[-2000:].strip())
        return " | ".join(t for t in text if t) or "(no log output)"

    def _start_hostile(self) -> None:
        assert self.workdir is not None
        if not any(h.hostile_behaviour for h in self.plan.hosts):
            return
        argv = [sys.executable, "-m", "exwatch.lab.hostile", str(self.workdir / "hostile.json")]
        proc = self._spawn(argv, "hostile.log", stdout_pipe=True)
        self.hostile_proc = proc
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until bound or dead
        if not line.startswith(b"ready"):
            proc.wait(timeout=5)
            raise LabError(
                f"the hostile-host server did not start: {self._log_tail('hostile.log')}"
            )

    def _start_python(self) -> None:
        assert self.workdir is not None
        argv = [
            sys.executable,
            "-m",
            "exwatch.lab.python_backend",
            str(self.workdir / "python-backend.json"),
        ]
        if self.nginx_cpu is not None:
            argv = ["taskset", "-c", str(self.nginx_cpu), *argv]
        proc = self._spawn(argv, "python-backend.log", stdout_pipe=True)
        self.server_proc = proc
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until every address is bound, or dead
        if not line.startswith(b"ready"):
            proc.wait(timeout=5)
            raise LabError(
                f"the Python lab backend did not start: {self._log_tail('python-backend.log')}"
            )

    def _start_nginx(self, nginx: str, probe_ip: str) -> None:
        assert self.workdir is not None
        wd = self.workdir
        # -e: the startup log goes to the working directory too, not /var/log/nginx.
        argv = [
            nginx,
            "-e",
            str(wd / "logs" / "error.log"),
            "-p",
            str(wd),
            "-c",
            str(wd / "nginx.conf"),
        ]
        if self.nginx_cpu is not None:
            argv = ["taskset", "-c", str(self.nginx_cpu), *argv]
        proc = self._spawn(argv, "nginx.stderr")
        self.nginx_proc = self.server_proc = proc
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LabError(
                    f"nginx exited with code {proc.returncode}: "
                    f"{self._log_tail('nginx.stderr', 'error.log')}"
                )
            if _tls_ready(probe_ip, self.port, timeout=0.5):
                return
            time.sleep(0.05)
        raise LabError(f"nginx did not start listening within {START_TIMEOUT:.0f} s")

    def _check_closed(self) -> None:
        closed = [h.ip for h in self.plan.hosts if h.kind == "closed"]
        if closed and _tcp_open(closed[0], self.port, timeout=1.0):
            raise LabError(
                f"{closed[0]}:{self.port} should be closed but accepts connections: another "
                f"process listens on a wildcard address at port {self.port}; pick another --port"
            )

    def running(self) -> bool:
        return bool(self._procs) and all(p.poll() is None for p in self._procs)

    def stop(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            if proc.stdout is not None:
                proc.stdout.close()
        self._procs.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()
        self.nginx_proc = self.server_proc = self.hostile_proc = None
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
