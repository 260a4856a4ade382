"""Pairs of consecutive dates of one place from the catalogue (`eominer change
--consecutive`): what an analyst maps over an archive without writing a pairs file.

One place is:
- Sentinel-2: one MGRS tile on one grid (CRS, transform and size). Every product of a full
  tile shares its grid; crops of one tile (OSCD's cities, say) are other places;
- Sentinel-1: one relative orbit and pass, whose footprints overlap by at least
  `MIN_S1_OVERLAP` of the smaller one (slices of one track start at other places on
  other days; a pair that hardly overlaps has little to compare).

Within a place the products are ordered by acquisition, and each is paired with the
next. Products of one instant (the same scene twice) and sensors never mix.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

MIN_S1_OVERLAP = 0.5


@dataclass
class Consecutive:
    pairs: list[tuple[str, str]] = field(default_factory=list)
    places: dict[str, int] = field(default_factory=dict)  # place -> pairs
    notes: list[str] = field(default_factory=list)


def _place(row: dict[str, Any]) -> tuple:
    if row["sensor"] == "S1":
        return ("S1", row["relative_orbit"], row["orbit_direction"])
    return (row["sensor"], row["tile_id"], row["crs"], row["transform"], row["width"],
            row["height"])


def _names(keys: list[tuple]) -> dict[tuple, str]:
    """A name per place: an S1 orbit and pass; an S2 tile, numbered where the tile has
    several grids (crops of it)."""
    out: dict[tuple, str] = {}
    for key in keys:
        if key[0] == "S1":
            out[key] = f"S1 orbit {key[1]} {str(key[2] or '').lower()}".strip()
        else:
            out[key] = f"{key[0]} tile {key[1]}" if key[1] else f"{key[0]} grid {key[3]}"
    base = dict(out)
    seen: dict[str, int] = defaultdict(int)
    for key in sorted(keys, key=lambda k: (base[k], str(k))):
        if list(base.values()).count(base[key]) > 1:
            seen[base[key]] += 1
            out[key] = f"{base[key]} ({seen[base[key]]})"
    return out


def _overlap(a: str, b: str) -> float:
    """Intersection over the smaller footprint (WKT, lon/lat)."""
    import shapely

    fa, fb = shapely.from_wkt(a), shapely.from_wkt(b)
    small = min(fa.area, fb.area)
    return fa.intersection(fb).area / small if small > 0 else 0.0


def consecutive_pairs(rows: Sequence[dict[str, Any]]) -> Consecutive:
    """`rows`: catalogue rows (`Store.products(...).to_pylist()`), any order."""
    out = Consecutive()
    places: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        places[_place(r)].append(r)
    names = _names(list(places))
    for key, group in sorted(places.items(), key=lambda kv: names[kv[0]]):
        group.sort(key=lambda r: (r["acquired"], r["product_id"]))
        name, n = names[key], 0
        for a, b in zip(group, group[1:]):
            if a["acquired"] == b["acquired"]:
                out.notes.append(f"{name}: {a['product_id']} and {b['product_id']} are of "
                                 "one instant: not a pair")
                continue
            if key[0] == "S1" and (share := _overlap(a["footprint_wkt"], b["footprint_wkt"])
                                   ) < MIN_S1_OVERLAP:
                out.notes.append(f"{name}: {a['product_id']} and {b['product_id']} overlap "
                                 f"by {share:.0%} of the smaller (at least "
                                 f"{MIN_S1_OVERLAP:.0%}): not a pair")
                continue
            out.pairs.append((a["product_id"], b["product_id"]))
            n += 1
        if n:
            out.places[name] = n
    return out
