"""Parsing exwatch's own YAML data files.

libyaml's safe loader where PyYAML has it (its wheels do), else PyYAML's pure-Python safe
loader: the same documents (tests/foundation/test_yamldoc.py holds every shipped file to
that), at about a ninth of the CPU, which is most of what a command spends starting up.
"""

from __future__ import annotations

from typing import IO, Any

import yaml

LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse(source: str | IO[str]) -> Any:
    """One YAML document, with the safe loader's types only; raises yaml.YAMLError."""
    return yaml.load(source, Loader=LOADER)  # noqa: S506 (a safe loader, C when available)


__all__ = ["LOADER", "parse"]
