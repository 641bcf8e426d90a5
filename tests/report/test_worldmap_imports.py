"""Drawing the world map leaves the import system as it was: the shapes package (whose
parent, pygal, appends a legacy finder to `sys.meta_path` when imported) is read as data,
so a later first import in the same process raises no ImportWarning (an error here)."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
before = list(sys.meta_path)
from exwatch.report.worldmap import choropleth_svg, world_shapes
shapes = world_shapes()
assert len(shapes.countries) > 200 and shapes.names["BE"] == "Belgium", shapes.names.get("BE")
assert sys.meta_path == before, [f for f in sys.meta_path if f not in before]
try:
    import _exwatch_no_such_module  # a first import that misses: every finder is asked
except ModuleNotFoundError:
    pass
import multiprocessing.connection  # the import that tripped under -W error before
print("ok")
"""


def test_world_map_installs_no_import_finder() -> None:
    # A fresh interpreter: in this one the shapes may already be cached.
    p = subprocess.run(
        [sys.executable, "-W", "error", "-c", PROBE],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "ok"
