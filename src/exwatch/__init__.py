"""exwatch: exposure census and compromise check for on-premises Microsoft Exchange."""

from __future__ import annotations

__version__ = "0.1.0"

from exwatch.assess import assess
from exwatch.model import Assessment, Build, CveResult, Precision, Status, Verdict

__all__ = [
    "Assessment",
    "Build",
    "CveResult",
    "Precision",
    "Status",
    "Verdict",
    "__version__",
    "assess",
]
