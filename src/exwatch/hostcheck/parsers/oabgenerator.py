"""Exchange OABGenerator logs (`Logging\\OABGeneratorLog\\*.log`).

No public source gives the column layout, and Test-ProxyLogon reads these files as plain
text, so every non-comment line becomes a record whatever its shape (CSV under a `#Fields:`
header when there is one).  The one fact detection needs is Exchange's message
`Download failed and temporary file '<path>' needs to be removed`; the path (quotes kept,
as Test-ProxyLogon's pattern captures it) is derived as the `download_path` field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from exwatch.hostcheck.parsers.fielded import FieldedParser
from exwatch.hostcheck.records import Kind

# Test-ProxyLogon's Select-String pattern (case-insensitive), group 1 = quoted path.
DOWNLOAD_FAILED = re.compile(r"Download failed and temporary file (.*?) needs to be removed", re.I)
_ISO_ANYWHERE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z?")


class OabGeneratorParser(FieldedParser):
    kind = Kind.OAB_GENERATOR
    data_format = "Exchange OABGenerator log"
    default_fields = ("raw",)

    def header_fields(self, text: str) -> list[str]:
        return ["raw"]  # the line is matched as text whatever its columns

    def split(self, line: str) -> list[str] | None:
        return [line]

    def valid(self, values: list[str], index: Mapping[str, int]) -> bool:
        return True

    def timestamp(self, values: list[str], index: Mapping[str, int]) -> str:
        found = _ISO_ANYWHERE.search(values[0][:200]) if values else None
        if found is None:
            return ""
        text = found.group()
        return text if text.endswith("Z") else text + "Z"

    def derive(
        self, raw: str, values: list[str], index: Mapping[str, int]
    ) -> dict[str, str] | None:
        if "temporary file" not in raw.lower():  # cheap pre-check before the regex
            return None
        found = DOWNLOAD_FAILED.search(raw)
        return {"download_path": found.group(1)} if found else None


__all__ = ["DOWNLOAD_FAILED", "OabGeneratorParser"]
