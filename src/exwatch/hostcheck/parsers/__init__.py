"""One parser per log format, each producing typed records (see `records.py`).

Registration is explicit: PARSERS maps a record kind to its parser.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from exwatch.hostcheck.parsers.cmdlet import CmdletParser
from exwatch.hostcheck.parsers.ecp_server import EcpServerParser
from exwatch.hostcheck.parsers.evtx import EvtxParser
from exwatch.hostcheck.parsers.httpproxy import HttpProxyParser
from exwatch.hostcheck.parsers.oabgenerator import OabGeneratorParser
from exwatch.hostcheck.parsers.w3c import W3CParser
from exwatch.hostcheck.records import FileStats, Kind, Record


class Parser(Protocol):
    @property
    def kind(self) -> Kind: ...

    @property
    def data_format(self) -> str: ...

    def parse_file(
        self, path: Path, rel: str, stats: FileStats, meta: dict[str, str] | None = None
    ) -> Iterator[Record]: ...

    def parse_text(self, text: str, rel: str = "<example>") -> tuple[list[Record], FileStats]: ...


PARSERS: dict[Kind, Parser] = {
    Kind.IIS: W3CParser(),
    Kind.HTTPPROXY: HttpProxyParser(),
    Kind.ECP_SERVER: EcpServerParser(),
    Kind.OAB_GENERATOR: OabGeneratorParser(),
    Kind.CMDLET: CmdletParser(),
    Kind.EVTX: EvtxParser(),
}

__all__ = ["PARSERS", "Parser"]
