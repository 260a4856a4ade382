"""Per-patch statistics of the pixel differences of a pair as a feature set (issue 17):
does an OSCD session find "new construction" better with them?

The pair sets a session has today describe each date's patch (band means and spreads,
texture) and their differences, plus the change map's per-patch columns. A new building
changes a few pixels of a 16 px patch in a direction of its own (brighter SWIR and red,
darker NIR): the band means dilute it, and the change map's magnitude drops the
direction. This probe writes, per patch of each pair's first product and per band of
`CHANGE_BANDS`, the low and high tails (10th and 90th percentile) and the mean magnitude
of the pixel differences, plus the tails of the NDVI and NDBI differences, as feature
sets in a kept `eval learning` workspace:
- `pixdiff_raw`: differences of top-of-atmosphere reflectance (36 columns);
- `pixdiff_std`: of each date standardised on its own valid pixels (median, MAD), so a
  city's season or haze shifts no column (36);
- `pdtails`: `pixdiff_std` without the mean magnitudes (24);
- `pdidx`: its six index columns only, which became the product's `diff_tails`
  (`change/tails.py`, where a masked pixel counts as 0 instead of being left out);
- `pdc_centre`, `pdc_std`: the product's `diff_tails` (`change.tails.pair_tails`) of
  each pair's index differences centred on their median over the pair, or also divided
  by their robust scale (MAD), so a city's season shifts no column.

Then `ranking_probes.py --feature-sets pair_spectral,pair_gabor,<change set>,pdidx`
compares them with the product's sets (docs/learning.md, "The pair's index tails").

    python bench/change_pixel_stats.py --workspace /tmp/ws_oscd [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

QUANTILES = (0.1, 0.9)


def patch_stats(d: np.ndarray, valid: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """(n, 3 * bands): per band the QUANTILES and the mean |d| of each window's valid
    pixels (0 for a window with none). `windows`: (n, 4) x_off, y_off, width, height."""
    out = np.zeros((len(windows), 3 * d.shape[0]), np.float32)
    for i, (x, y, w, h) in enumerate(windows):
        ok = valid[y:y + h, x:x + w].ravel()
        if not ok.any():
            continue
        v = d[:, y:y + h, x:x + w].reshape(d.shape[0], -1)[:, ok]
        q = np.quantile(v, QUANTILES, axis=1)  # (2, bands)
        out[i] = np.concatenate([q[0], q[1], np.abs(v).mean(1)])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = ap.parse_args()
    os.environ["EOMINER_HOME"] = str(args.workspace)

    from eominer.change.align import CHANGE_BANDS, align_pair, load_scene
    from eominer.change.normalise import robust_location_scale, sample_index, standardise
    from eominer.change.tails import COLUMNS, INDICES, normalised_difference, window_tails
    from eominer.evaluation import tasks
    from eominer.store import open_store

    bands = CHANGE_BANDS
    cols = [f"{s}_{b.lower()}" for s in ("q10", "q90", "absmean") for b in bands] + [
        f"{s}_{i}" for s in ("q10", "q90", "absmean") for i in ("ndvi", "ndbi")]
    with open_store(f"duckdb:///{args.workspace / 'eval.duckdb'}") as store:
        task = tasks.oscd_task(store, args.data, None, 16, args.workspace, [])
        sets = {k: store.register_feature_set(f"pixdiff_{k}", 1, {"probe": k}, cols,
                                              sensor="S2") for k in ("raw", "std")}
        subsets = {"pdtails": [c for c in cols if not c.startswith("absmean")],
                   "pdidx": [c for c in cols if c.endswith(("ndvi", "ndbi"))]}
        subsets_fs = {k: store.register_feature_set(k, 1, {"probe": k}, v, sensor="S2")
                      for k, v in subsets.items()}
        centred = {k: store.register_feature_set(k, 1, {"probe": k}, COLUMNS, sensor="S2")
                   for k in ("pdc_centre", "pdc_std")}
        for p1, p2 in task.pairs:
            pair = align_pair(load_scene(p1, store), load_scene(p2, store), notes=[])
            t = store.patches(p1, 16)
            ids = t["patch_id"].to_numpy().astype(np.int64)
            win = np.stack([t["x_off"].to_numpy(), t["y_off"].to_numpy(),
                            t["size_px"].to_numpy(), t["size_px"].to_numpy()], 1)
            for kind, fs in sets.items():
                a, b = pair.x1, pair.x2
                if kind == "std":
                    a, b = standardise(a, pair.valid), standardise(b, pair.valid)
                d = b - a
                di = np.stack([normalised_difference(pair.x2, bands, "B08", "B04")
                               - normalised_difference(pair.x1, bands, "B08", "B04"),
                               normalised_difference(pair.x2, bands, "B11", "B08")
                               - normalised_difference(pair.x1, bands, "B11", "B08")])
                X = np.concatenate([patch_stats(d, pair.valid, win),
                                    patch_stats(di, pair.valid, win)], 1)
                store.write_features(fs, ids, X)
                if kind == "std":
                    for k, keep in subsets.items():
                        store.write_features(subsets_fs[k], ids,
                                             X[:, [cols.index(c) for c in keep]])
            parts: dict[str, list[np.ndarray]] = {k: [] for k in centred}
            x0, y0, size = (t[c].to_numpy().astype(np.int64) for c in ("x_off", "y_off",
                                                                        "size_px"))
            for _, a, b in INDICES:
                d = (normalised_difference(pair.x2, bands, a, b)
                     - normalised_difference(pair.x1, bands, a, b))
                med, scale = robust_location_scale(
                    d.ravel()[sample_index(pair.valid)].astype(np.float64))
                for k in centred:
                    e = ((d - med) / (scale if k == "pdc_std" else 1.0)).astype(np.float32)
                    e[~pair.valid] = 0.0
                    parts[k].append(window_tails(e, x0, y0, size))
            for k, fs in centred.items():
                store.write_features(fs, ids, np.concatenate(parts[k], 1))
            print(f"{p1}: {len(ids)} patches", flush=True)


if __name__ == "__main__":
    main()
