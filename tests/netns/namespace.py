"""Create a private network namespace, run a command in it, always remove it.

Used by the delayed-network test and `bench/netns_bench.py`.  The namespace gets a unique
name, holds only its own loopback, and is deleted (after ending the processes the test
started in it) whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

SCENARIO = Path(__file__).with_name("scenario.py")


class NetnsUnavailable(Exception):
    """Namespaces cannot be made here (not root, no iproute2, refused by the kernel...)."""


def netns_inode() -> int:
    """This process's network namespace (the scenario compares it with its own)."""
    return os.stat("/proc/self/ns/net").st_ino


def missing_prerequisite() -> str | None:
    """Why the delayed-network scenario cannot run here, or None."""
    if sys.platform != "linux":
        return "network namespaces are Linux-only"
    if os.geteuid() != 0:
        return "creating a network namespace needs root"
    for tool, package in (("ip", "iproute2"), ("nft", "nftables"), ("tc", "iproute2")):
        if shutil.which(tool) is None:
            return f"'{tool}' is not installed (Debian: apt-get install -y {package})"
    from exwatch.lab.farm import find_nginx

    if find_nginx() is None:
        return "nginx is not installed (Debian: apt-get install -y nginx)"
    return None


def _ip(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def _end_processes(name: str) -> None:
    """End what still runs in the namespace: only processes this test started there."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = [int(p) for p in _ip("netns", "pids", name).stdout.split()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        time.sleep(1.0)


@contextlib.contextmanager
def fresh_netns(prefix: str = "exwatch-test") -> Iterator[str]:
    """A new, uniquely named namespace with its loopback up; raises NetnsUnavailable."""
    reason = missing_prerequisite()
    if reason is not None:
        raise NetnsUnavailable(reason)
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    made = _ip("netns", "add", name)
    if made.returncode != 0:
        raise NetnsUnavailable(f"'ip netns add' was refused: {made.stderr.strip()}")
    try:
        up = _ip("-n", name, "link", "set", "lo", "up")
        if up.returncode != 0:
            raise NetnsUnavailable(f"cannot bring up lo in the namespace: {up.stderr.strip()}")
        yield name
    finally:
        _end_processes(name)
        _ip("netns", "del", name)


def run_scenario(name: str, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run scenario.py inside namespace `name`; it checks it is there before anything."""
    argv = [
        "ip",
        "netns",
        "exec",
        name,
        sys.executable,
        str(SCENARIO),
        "--netns-name",
        name,
        "--parent-netns",
        str(netns_inode()),
        *args,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


__all__ = [
    "NetnsUnavailable",
    "fresh_netns",
    "missing_prerequisite",
    "netns_inode",
    "run_scenario",
]
