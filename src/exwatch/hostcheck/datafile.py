"""The package's data files (`exwatch/hostcheck/data/`), read as text or YAML."""

from __future__ import annotations

from importlib import resources
from typing import Any

from exwatch import yamldoc

DATA_PACKAGE = "exwatch.hostcheck.data"


def read_text(name: str) -> str:
    return resources.files(DATA_PACKAGE).joinpath(name).read_text(encoding="utf-8")


def load_yaml(name: str) -> Any:
    return yamldoc.parse(read_text(name))


__all__ = ["DATA_PACKAGE", "load_yaml", "read_text"]
