"""A store per backend with three scans and one hostile host, served by a real server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.store.backends import BACKENDS, pg_database  # noqa: F401  (fixture)
from tests.web.records import build_store
from tests.web.server import Running, serving


@pytest.fixture(scope="module", params=BACKENDS)
def web_db(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> str:
    return build_store(tmp_path_factory.mktemp("web"), request.param, request)


@pytest.fixture(scope="module")
def site(web_db: str) -> Iterator[Running]:
    with serving(web_db) as running:
        yield running
