"""Process set-up shared by the lab's helper processes (and the tests' delay relay)."""

from __future__ import annotations

import ctypes
import resource
import signal


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """Ask Linux to send this process `signum` when its parent dies, even by SIGKILL (as a
    `preexec_fn`, or called first thing in a helper process)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signum)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def raise_fd_limit() -> None:
    """Lift the open-files limit to its hard maximum: a lab serves thousands of sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


__all__ = ["die_with_parent", "raise_fd_limit"]
