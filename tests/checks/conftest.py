"""The scanner tests' loopback TLS servers and corpus, for the checks' hostile-server tests;
and no broken import hook left behind."""

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
    module takes out the finders without `find_spec` it added (and nothing else)."""
    before = list(sys.meta_path)
    yield
    sys.meta_path[:] = [f for f in sys.meta_path if f in before or hasattr(f, "find_spec")]
