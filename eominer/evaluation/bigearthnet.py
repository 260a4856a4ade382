"""Readers for BigEarthNet's paired Sentinel-1 / Sentinel-2 patches.

Two layouts, found anywhere under a root folder (so `--data` can point at the tiny test
folder or at a full download):
- v1 per-band GeoTIFF folders: S2 folders `<S2 name>/<S2 name>_B??.tif` and S1 folders
  `<S1 name>/<S1 name>_V?.tif`, each with `<name>_labels_metadata.json`; the S1 JSON names
  its partner in `corresponding_s2_patch`. Labels are the 43 CORINE names (mapped to 19).
- v2 LMDB: a folder with `metadata.parquet` (patch_id, labels, split, s1_name...; any
  other `metadata*.parquet` beside it, e.g. the snow/cloud patches, is read too) and an LMDB
  environment (`*LMDB*`) whose values are safetensors blobs keyed by patch_id (S2 bands) and
  s1_name (VV, VH).

Every patch comes back on the 10 m grid: the 20/60 m S2 bands are upsampled bilinearly,
S1 is checked to be in dB (see eominer.fusion.sar). BigEarthNet S2 is L2A: the 12 bands
of `S2_FUSION_BANDS` (eominer.fusion.bands), without the cirrus band B10.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from eominer import sensors as S
from eominer.errors import GridMismatchError, MissingBandError, ProductReadError, require
from eominer.fusion.bands import S2_FUSION_BANDS
from eominer.fusion.labels import to_ben19
from eominer.fusion.sar import require_db

if TYPE_CHECKING:
    import re

__all__ = ["S2_FUSION_BANDS", "Dataset", "PairedPatch", "load", "read_v1", "read_v2"]


@dataclass(frozen=True)
class PairedPatch:
    """One labelled place seen by both sensors, on the same 10 m grid."""

    patch_id: str          # the S2 patch name (the key fused rows are stored under)
    s1_name: str
    s2: np.ndarray         # (12, n, n) float32 reflectance (DN / 10000), 0 = no data
    s1: np.ndarray         # (2, n, n) float32 backscatter in dB (VV, VH)
    labels: tuple[str, ...]  # 19-class names
    split: str | None = None
    source: str = ""       # "v1" or "v2"

    def __post_init__(self) -> None:
        if self.s2.shape[1:] != self.s1.shape[1:]:
            raise GridMismatchError(
                f"patch {self.patch_id}: S2 is {self.s2.shape[1]}x{self.s2.shape[2]} px but "
                f"its S1 partner {self.s1_name} is {self.s1.shape[1]}x{self.s1.shape[2]} px; "
                "paired patches must share the 10 m grid (resample S1 onto the S2 grid first)"
            )


def upsample(band: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a square band to size x size (pixel-area aligned)."""
    if band.shape == (size, size):
        return band.astype(np.float32)
    from scipy.ndimage import zoom

    factor = (size / band.shape[0], size / band.shape[1])
    return zoom(band.astype(np.float32), factor, order=1, grid_mode=True, mode="nearest")


def _stack_s2(bands: dict[str, np.ndarray], where: str) -> np.ndarray:
    missing = [b for b in S2_FUSION_BANDS if b not in bands]
    if missing:
        raise MissingBandError(
            f"S2 patch {where} lacks bands {missing}: expected the 12 L2A bands "
            f"{list(S2_FUSION_BANDS)}, found {sorted(bands)}"
        )
    size = bands["B02"].shape[0]
    return np.stack([upsample(bands[b], size) for b in S2_FUSION_BANDS]) / S.S2_REFLECTANCE_SCALE


def _stack_s1(bands: dict[str, np.ndarray], where: str) -> np.ndarray:
    missing = [b for b in S.S1_BANDS if b not in bands]
    if missing:
        raise MissingBandError(f"S1 patch {where} lacks {missing}: expected VV and VH")
    arr = np.stack([bands[b].astype(np.float32) for b in S.S1_BANDS])
    return require_db(arr, f"S1 patch {where}")


# ---- v1: per-band GeoTIFF folders -------------------------------------------------------

def _read_tif(path: Path) -> np.ndarray:
    import rasterio

    try:
        with rasterio.open(path) as ds:
            return ds.read(1)
    except rasterio.errors.RasterioIOError as exc:
        raise ProductReadError(f"cannot read {path}: {exc}") from exc


def _v1_folder_bands(folder: Path, pattern: re.Pattern[str]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for f in sorted(folder.glob("*.tif")):
        if m := pattern.search(f.name):
            out[m.group(1).upper()] = _read_tif(f)
    return out


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ProductReadError(f"cannot read label metadata {path}: {exc}") from exc


def read_v1(root: Path) -> tuple[list[PairedPatch], list[str]]:
    """Paired v1 patches under `root` and the names of S1 patches with no S2 partner there."""
    s2_dirs: dict[str, Path] = {}
    s1_dirs: list[tuple[Path, dict]] = []
    for meta in sorted(root.rglob("*_labels_metadata.json")):
        info = _json(meta)
        if "corresponding_s2_patch" in info:
            s1_dirs.append((meta.parent, info))
        else:
            s2_dirs[meta.parent.name] = meta.parent
    patches, unpaired = [], []
    for s1_dir, info in s1_dirs:
        s2_name = info["corresponding_s2_patch"]
        if s2_name not in s2_dirs:
            unpaired.append(s1_dir.name)
            continue
        s2_dir = s2_dirs[s2_name]
        s2 = _stack_s2(_v1_folder_bands(s2_dir, S.S2_BAND_RE), str(s2_dir))
        s1 = _stack_s1(_v1_folder_bands(s1_dir, S.S1_BAND_RE), str(s1_dir))
        s2_info = _json(s2_dir / f"{s2_name}_labels_metadata.json")
        labels = to_ben19(s2_info.get("labels", info.get("labels", [])), str(s2_dir))
        patches.append(PairedPatch(s2_name, s1_dir.name, s2, s1, labels, None, "v1"))
    return patches, unpaired


# ---- v2: LMDB of safetensors + metadata.parquet ----------------------------------------

def _lmdb_env_dir(folder: Path) -> Path:
    cands = [p for p in folder.iterdir() if p.is_dir() and "lmdb" in p.name.lower()
             and (p / "data.mdb").exists()]
    if not cands:
        raise ProductReadError(
            f"{folder} has metadata.parquet but no LMDB environment (a folder named *LMDB* "
            "with data.mdb): expected the BigEarthNet v2 LMDB distribution"
        )
    return sorted(cands)[0]


def _v2_rows(folder: Path) -> list[dict]:
    import pyarrow.parquet as pq

    rows: list[dict] = []
    seen: set[str] = set()
    for f in sorted(folder.glob("metadata*.parquet")):
        cols = pq.read_schema(f).names
        needed = {"patch_id", "labels", "s1_name"}
        if not needed <= set(cols):
            raise ProductReadError(f"{f} lacks columns {sorted(needed - set(cols))}")
        for r in pq.read_table(f, columns=[c for c in cols if c != "__index_level_0__"]
                               ).to_pylist():
            if r["patch_id"] not in seen:
                seen.add(r["patch_id"])
                rows.append(r)
    return rows


def read_v2(folder: Path) -> tuple[list[PairedPatch], list[str]]:
    """Paired v2 patches of one LMDB distribution folder, and the ids missing from its LMDB."""
    lmdb = require("lmdb", "fusion", "reading BigEarthNet v2 LMDB")
    st = require("safetensors.numpy", "fusion", "reading BigEarthNet v2 LMDB")
    env_dir = _lmdb_env_dir(folder)
    patches, unpaired = [], []
    env = lmdb.open(str(env_dir), readonly=True, lock=False, readahead=False)
    try:
        with env.begin() as txn:
            for r in _v2_rows(folder):
                s2_blob, s1_blob = txn.get(r["patch_id"].encode()), txn.get(r["s1_name"].encode())
                if s2_blob is None or s1_blob is None:
                    unpaired.append(r["patch_id"])
                    continue
                where = f"{env_dir}:{r['patch_id']}"
                s2 = _stack_s2(st.load(s2_blob), where)
                s1 = _stack_s1(st.load(s1_blob), f"{env_dir}:{r['s1_name']}")
                labels = to_ben19(list(r["labels"]), where)
                patches.append(PairedPatch(r["patch_id"], r["s1_name"], s2, s1, labels,
                                           r.get("split"), "v2"))
    finally:
        env.close()
    return patches, unpaired


@dataclass(frozen=True)
class Dataset:
    patches: tuple[PairedPatch, ...]
    unpaired: tuple[str, ...]  # S1 (v1) or patch ids (v2) whose partner is missing

    @property
    def labels(self) -> list[tuple[str, ...]]:
        return [p.labels for p in self.patches]

    def __iter__(self) -> Iterator[PairedPatch]:
        return iter(self.patches)

    def __len__(self) -> int:
        return len(self.patches)


def load(root: str | Path) -> Dataset:
    """Every paired, labelled patch under `root` (both layouts), sorted by patch id."""
    root = Path(root)
    if not root.is_dir():
        raise ProductReadError(f"BigEarthNet folder {root} does not exist or is not a folder")
    patches, unpaired = read_v1(root)
    for meta in sorted({p.parent for p in root.rglob("metadata.parquet")}):
        more, missing = read_v2(meta)
        patches += more
        unpaired += missing
    if not patches:
        raise ProductReadError(
            f"no paired S1/S2 BigEarthNet patches under {root}: expected v1 folders with "
            "*_labels_metadata.json (S1 ones naming corresponding_s2_patch) or a v2 folder "
            "with metadata.parquet and an LMDB"
        )
    sizes = {p.s2.shape[1] for p in patches}
    if len(sizes) > 1:
        raise GridMismatchError(
            f"patches under {root} have different sizes {sorted(sizes)} px: one size per dataset"
        )
    ids = [p.patch_id for p in patches]
    if len(set(ids)) != len(ids):
        raise ProductReadError(f"duplicate patch ids under {root}: the same patch is read twice")
    return Dataset(tuple(sorted(patches, key=lambda p: p.patch_id)), tuple(unpaired))
