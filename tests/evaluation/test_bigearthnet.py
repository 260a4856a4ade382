from __future__ import annotations

import numpy as np
import pytest

from eominer.errors import FeatureError, GridMismatchError, ProductReadError
from eominer.evaluation import bigearthnet

S2_PAIRED = "S2A_MSIL2A_20170617T113321_36_85"


def test_reads_both_layouts(ben):
    data = bigearthnet.load(ben)
    assert len(data) == 27  # 24 v2 (LMDB) + 3 v1 (GeoTIFF folders)
    assert sum(p.source == "v2" for p in data) == 24
    assert len(data.unpaired) == 3 and all("33UUP_61_" in u for u in data.unpaired)
    p = next(p for p in data if p.patch_id == S2_PAIRED)
    assert p.labels == ("Arable land", "Pastures")  # from Non-irrigated arable land
    assert p.s2.shape == (12, 120, 120) and p.s1.shape == (2, 120, 120)
    assert 0.0 < float(np.median(p.s2)) < 0.5          # reflectance, not DN
    assert -25 < float(p.s1.mean()) < -5                # dB
    v2 = next(p for p in data if p.patch_id.endswith("T33UUP_38_87"))
    assert "Industrial or commercial units" in v2.labels and v2.split == "train"
    # the 20 m bands were upsampled: B05 has 120 x 120 distinct-ish values, not 2x2 blocks
    assert v2.s2[4, 0, 0] != v2.s2[4, 0, 1] or v2.s2[4, 1, 0] != v2.s2[4, 0, 0]


def test_linear_s1_is_refused(pair_copy):
    root = pair_copy(s1="linear")
    with pytest.raises(ProductReadError, match="looks like linear power.*10\\*log10"):
        bigearthnet.load(root)


def test_mismatched_patch_sizes_are_refused(pair_copy):
    root = pair_copy(s1="crop")
    with pytest.raises(GridMismatchError, match="S2 is 120x120 px but its S1 partner"):
        bigearthnet.load(root)


def test_unknown_label_in_json_is_refused(pair_copy):
    root = pair_copy(s2_labels=["Pastures", "Moon dust"])
    with pytest.raises(FeatureError, match="unknown land-cover label 'Moon dust'"):
        bigearthnet.load(root)


def test_folder_without_pairs(tmp_path):
    with pytest.raises(ProductReadError, match="no paired S1/S2 BigEarthNet patches"):
        bigearthnet.load(tmp_path)
