"""The terminal table: identifiers, times and numbers whole on one line, whatever the
width (text and headers fold)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from eominer.cli.output import render

# real product names as they are downloaded: a Sentinel-2 L2A of baseline 05.10 and a
# Sentinel-1 GRD (60 and 67 characters)
IDS = ["S2B_MSIL2A_20240612T103629_N0510_R008_T32TQM_20240612T134531",
       "S1A_IW_GRDH_1SDV_20240613T053312_20240613T053337_054284_069A2B_3F1C"]


def test_ids_times_and_numbers_stay_whole_in_a_wide_listing():
    # the columns of `eominer products`: too many for 200 characters at their widths
    t = pa.table({
        "product_id": IDS, "sensor": ["S2", "S1"], "platform": ["S2B", "S1A"],
        "processing_level": ["L2A", "GRD"], "processing_baseline": ["05.10", None],
        "tile_id": ["32TQM", None],
        "acquired": pa.array([dt.datetime(2024, 6, 12, 10, 36, 29),
                              dt.datetime(2024, 6, 13, 5, 33, 12)], pa.timestamp("us")),
        "cloud_cover": [12.5, None], "cloud_mask": ["scl", None],
        "relative_orbit": [None, 117], "orbit_direction": [None, "DESCENDING"],
        "width": [10980, 25931], "height": [10980, 16854], "patches": [117649, 4096]})
    lines = render(t, "table", title="products").splitlines()
    assert max(map(len, lines)) <= 200
    # each product's id, time and numbers whole on its first line
    for pid, when, numbers in zip(IDS, ("2024-06-12 10:36:29", "2024-06-13 05:33:12"),
                                  (("12.5", "10980", "117649"), ("117", "25931", "16854"))):
        row = [ln for ln in lines if pid in ln]
        assert len(row) == 1, (pid, lines)
        cells = [c.strip() for c in row[0].split("│")]
        assert when in cells and set(numbers) <= set(cells), (cells, lines)
