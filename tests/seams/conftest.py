"""Fixtures of the seam tests: the checked lab scan, both store backends, a test CA."""

from tests.notify.conftest import test_ca
from tests.seams.lab import checked, rescanned
from tests.store.backends import backend, pg_database  # noqa: F401  (fixtures)

__all__ = ["checked", "rescanned", "test_ca"]
