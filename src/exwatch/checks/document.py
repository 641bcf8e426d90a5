"""What both checks data files (compromise.yaml, checks.yaml) share: a YAML mapping whose
`sources` map ids to a title and where, and entries that cite those ids."""

from __future__ import annotations

from typing import Any

import yaml

from exwatch import yamldoc
from exwatch.errors import DataError


def load(text: str, file: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The parsed document and its checked `sources` (raises DataError naming `file`)."""
    try:
        doc = yamldoc.parse(text)
    except yaml.YAMLError as exc:
        raise DataError(f"{file}: not YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise DataError(f"{file}: top level must be a mapping")
    sources = doc.get("sources")
    if not isinstance(sources, dict) or not sources:
        raise DataError(f"{file}: `sources` must map ids to a title and where")
    for sid, src in sources.items():
        if not isinstance(src, dict) or not src.get("title") or not src.get("where"):
            raise DataError(f"{file}: source {sid!r} needs a title and where")
    return doc, sources


def cited(raw: dict[str, Any], sources: dict[str, Any], where: str) -> tuple[str, ...]:
    """The source ids an entry cites: at least one, each an id of `sources`."""
    refs = tuple(raw.get("sources") or ())
    if not refs or any(s not in sources for s in refs):
        raise DataError(f"{where}: sources {list(refs)} must be ids of `sources`")
    return refs


__all__ = ["cited", "load"]
