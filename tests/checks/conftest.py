"""The scanner tests' loopback TLS servers and corpus, for the checks' hostile-server tests;
and import hooks left as they were found."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from ..scanner.conftest import canned, cert_pem, server_ctx

__all__ = ["canned", "cert_pem", "server_ctx"]


@pytest.fixture(autouse=True, scope="module")
def _import_hooks_restored() -> Iterator[None]:
    """Reports run in-process here load the country shapes' package, whose parent (pygal)
    appends an import finder without `find_spec`; a later first import of a missing module
    (multiprocessing's `_winapi`) then raises ImportWarning, an error in this suite.  Each
    module leaves `sys.meta_path` as it found it."""
    before = list(sys.meta_path)
    yield
    sys.meta_path[:] = before
