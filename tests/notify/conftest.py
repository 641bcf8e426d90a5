"""Fixtures of the notify tests: a test CA, and both store backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.notify.pki import TestCA
from tests.store.backends import backend, db, pg_database  # noqa: F401  (fixtures)


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def work(tmp_path: Path) -> Path:
    return tmp_path
