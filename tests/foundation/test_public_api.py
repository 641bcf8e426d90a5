from __future__ import annotations

import exwatch


def test_public_names_are_exported() -> None:
    for name in exwatch.__all__:
        assert hasattr(exwatch, name), name
    assert callable(exwatch.assess)
