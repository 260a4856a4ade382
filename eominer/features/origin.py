"""Which command makes a stored feature set: the advice an error gives when products
lack one (`eominer apply` of a model whose sets they do not have, say).

Most sets come from `eominer extract` (the descriptor registry), but not all: the
change sets and `diff_tails` come from `eominer change` (a pair's own set holds that
pair alone; the archive's set of its kind takes every pair's rows, on each pair's first
date: eominer.store.archive), as do the features of both dates (`dates_<name>`: `eominer
change --features NAME`, eominer.change.dates); a neighbourhood set comes from `extract
--neighbours`, a fused set from `eominer fusion`, and the time-series sets from `eominer
timeseries`. Naming `extract` for those sends the analyst to a command that refuses the
name.
"""

from __future__ import annotations

from collections.abc import Sequence

from eominer.features.neighbours import PREFIX as NEIGHBOURS
from eominer.store.archive import DATES_PREFIX, archive_of, is_archive, is_dates, is_pair_set
from eominer.store.features import FeatureSet
from eominer.store.fusion import FUSED_SENSOR

SERIES_SETS = ("temporal", "ts_breaks")


def advice_for(fs: FeatureSet, product_ids: Sequence[str]) -> str:
    """What computes `fs` for `product_ids` (the first five named): "run `COMMAND`
    first", with a short reason where it is not `extract` (a change pair's own set: the
    pair of each product that writes the archive's set of its kind)."""
    shown = ",".join(product_ids[:5])
    p = fs.params
    if is_pair_set(fs):  # (apply reads another product's rows from the archive's set)
        name, _ = archive_of(fs)
        method = f" --method {p['method']}" if p.get("method") else ""
        first = product_ids[0] if product_ids else "BEFORE"
        return (f"it holds the pair {p['first']} -> {p['second']} alone; run `eominer "
                f"change {first} AFTER{method}` first, AFTER a later date of the same "
                f"place, for each product: it writes their rows into {name} (every "
                f"mapped pair's rows), which is read for them")
    if is_archive(fs):
        method = f" --method {p['method']}" if p.get("method") else ""
        first = product_ids[0] if product_ids else "BEFORE"
        return (f"run `eominer change {first} AFTER{method}` first, AFTER a later date of "
                f"the same place, for each product (a change set has rows on the first date "
                f"of its pairs; `--pairs FILE` maps many)")
    if is_dates(fs):
        source = fs.name.removeprefix(DATES_PREFIX)
        first = product_ids[0] if product_ids else "BEFORE"
        return (f"run `eominer change {first} AFTER --features {source}` first, AFTER a "
                f"later date on the same grid, for each product (the features of both "
                f"dates have rows on the first date of a pair)")
    if fs.name.startswith(NEIGHBOURS) and "of" in p:
        source = str(p["of"]).split("_v")[0]
        return (f"run `eominer extract --features {source} --neighbours "
                f"{p.get('reach', 1)} --products {shown}` first")
    if fs.sensor == FUSED_SENSOR:
        return ("run `eominer fusion pair` (an S1 partner for each S2 product), then "
                "`eominer fusion features`")
    if fs.name in SERIES_SETS:
        return ("run `eominer timeseries --tile TILE` (a stack of >= 3 dates of the "
                "products' tile) first")
    return f"run `eominer extract --features {fs.name} --products {shown}` first"


def change_advice(sets: Sequence[FeatureSet], product_ids: Sequence[str]) -> str | None:
    """One `eominer change` command that writes every set of `sets` for `product_ids`
    when all are the archive's change sets or features of both dates (one run of a pair
    writes its map's set, `diff_tails` and the `dates_` sets of its --features), with at
    most one method among them; None otherwise (each set then has its own advice)."""
    if not sets or not all(is_archive(fs) or is_dates(fs) for fs in sets):
        return None
    methods = {str(fs.params["method"]) for fs in sets if fs.params.get("method")}
    if len(methods) > 1:
        return None
    sources = [fs.name.removeprefix(DATES_PREFIX) for fs in sets if is_dates(fs)]
    first = product_ids[0] if product_ids else "BEFORE"
    method = f" --method {methods.pop()}" if methods else ""
    features = f" --features {','.join(sources)}" if sources else ""
    grid = " on the same grid" if sources else ""
    return (f"run `eominer change {first} AFTER{method}{features}` first, AFTER a later "
            f"date of the same place{grid}, for each product: one run writes these sets' "
            f"rows on the pair's first date (`--pairs FILE` maps many)")
