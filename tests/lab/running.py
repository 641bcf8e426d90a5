"""What the lab test modules share: the backends to run under, and a running lab."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from exwatch.lab import Lab, find_nginx

NO_NGINX = pytest.mark.skipif(
    find_nginx() is None, reason="nginx not installed (apt-get install -y nginx)"
)
BACKENDS = [pytest.param("nginx", marks=NO_NGINX), "python"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def running_lab(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    *,
    hosts: int,
    seed: int,
    base: str,
) -> Iterator[Lab]:
    """Body of a module-scoped fixture parametrised by BACKENDS: one lab per backend."""
    backend: str = request.param
    with Lab(
        hosts=hosts,
        port=free_port(),
        seed=seed,
        workdir=tmp_path_factory.mktemp("lab"),
        base=base,
        backend=backend,
    ) as lab:
        assert lab.backend == backend
        yield lab
