"""A farm of simulated Exchange and other servers on 127.x.y.z, with a ground-truth file.

For tests, demos and benchmarks of the scanner: `Lab` (a context manager) generates the
host plan, nginx's config and the hostile-host server, runs them, and cleans up.
"""

from __future__ import annotations

from exwatch.lab.farm import Lab, LabError, find_nginx
from exwatch.lab.plan import DEFAULT_BASE, GROUND_TRUTH_VERSION, HOSTILE_STATUS

__all__ = [
    "DEFAULT_BASE",
    "GROUND_TRUTH_VERSION",
    "HOSTILE_STATUS",
    "Lab",
    "LabError",
    "find_nginx",
]
