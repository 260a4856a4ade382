"""Find products on disk and say what they are.

Layouts: a folder of per-band GeoTIFF/JPEG2000 files (either Sentinel-2 naming), a
Sentinel-2 .SAFE folder or .zip (L1C and L2A), a Sentinel-1 GRD .SAFE folder or .zip
(IW/EW/SM, VV+VH: calibrated, denoised and geocoded at ingest, eominer.io.s1_safe), a
multi-band GeoTIFF/COG, a folder of Sentinel-1 VV/VH GeoTIFFs, and a STAC Item (JSON), or
an ItemCollection of them, whose assets are local files, http(s) URLs (read through
GDAL's `/vsicurl/`, by range requests) or `s3://` hrefs (`/vsis3/`).
A folder holding no imagery itself but sub-folders that do is a batch of products.

Sentinel-2 metadata (`MTD_MSIL1C.xml` / `MTD_MSIL2A.xml`, eominer.io.s2_metadata) is
attached to the product: a SAFE's at its root; for a folder of band files, one in the
folder, one level up, or at the root of a `.SAFE` above it (also named
`<product>_MTD_MSIL1C.xml`). Multi-band stacks and STAC items are read without one
(offset 0). A product whose name says baseline >= 04.00 but has no metadata is refused.

A multi-band GeoTIFF/COG maps its bands by their band descriptions (ids or ESA names,
eominer.sensors.S2_BAND_ALIASES) or by `bands` (`eominer ingest --bands B02,B03,...`);
any set of at least 3 distinct S2 bands ingests, stored in ESA order. A stack whose
descriptions name no band and that has no `--bands` is refused, whatever its band
count: the order of a 13-band stack is not guessed (B8A after B08, or at the end?).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from eominer import sensors as S
from eominer.domain import BandSource, SourceProduct
from eominer.errors import MissingBandError, ProductReadError, UnsupportedFormatError
from eominer.io.mask_files import find_mask_files, masks_near
from eominer.io.s1_safe import SafeFiles, discover_s1_safe, discover_s1_stac, is_s1_safe, is_s1_stac
from eominer.io.s2_metadata import (
    MTD_NAME_RE,
    S2Metadata,
    check_against_bands,
    check_offset_known,
    find_mtd,
    find_mtd_tl,
    read_s2_metadata,
    read_sun_angles,
    stac_s2_metadata,
)

if TYPE_CHECKING:
    import pystac

RASTER_SUFFIXES = (".tif", ".tiff", ".jp2")
SUPPORTED = (
    "a folder of per-band Sentinel-2 GeoTIFF/JPEG2000 files, a Sentinel-2 or Sentinel-1 "
    "GRD .SAFE folder or .zip, a "
    "multi-band GeoTIFF/COG, a folder of Sentinel-1 VV/VH GeoTIFFs, or a STAC Item or "
    "ItemCollection .json"
)


def discover(path: str | Path, bands: Sequence[str] | None = None) -> list[SourceProduct]:
    """Products found at `path` (one, or several for a folder of product folders).

    `bands` names the bands of a multi-band GeoTIFF in the file's order (ids or aliases,
    eominer.sensors.S2_BAND_ALIASES); it applies to such stacks only."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ProductReadError(f"{p} does not exist: check the path")
    given = parse_band_list(bands) if bands is not None else None
    if given is not None and not (p.is_file() and p.suffix.lower() in (".tif", ".tiff")):
        raise UnsupportedFormatError(
            f"--bands names the bands of a multi-band GeoTIFF, but {p} is not one: "
            "drop --bands for folders, SAFE products and STAC items (their files name the bands)"
        )
    if p.is_dir():
        if p.suffix.upper() == ".SAFE":
            return [_safe_folder(p)]
        found = _band_folder(p)
        if found is not None:
            return [found]
        subs = sorted(d for d in p.iterdir() if d.is_dir())
        products = [x for d in subs if (x := _band_folder(d) or _maybe_safe(d)) is not None]
        if products:
            return products
        raise UnsupportedFormatError(f"no imagery found in folder {p}: expected {SUPPORTED}")
    suffix = p.suffix.lower()
    if suffix == ".zip":
        return [_safe_zip(p)]
    if suffix == ".json":
        return _stac_json(p)
    if suffix in (".tif", ".tiff"):
        return [_multiband_file(p, given)]
    raise UnsupportedFormatError(f"{p} is not a supported format ({p.suffix}): expected {SUPPORTED}")


def _maybe_safe(d: Path) -> SourceProduct | None:
    if d.suffix.upper() != ".SAFE":
        return None
    return _safe_folder(d)


def _safe_folder(d: Path) -> SourceProduct:
    files = _list_dir(d)
    if is_s1_safe(d.name, files):
        return discover_s1_safe(d.name, d, files, SafeFiles(str(d)))
    return _safe_product(d, d, lambda rel: str(d / rel), files, lambda rel: (d / rel).read_bytes())


def _list_dir(root: Path) -> list[str]:
    return [str(f.relative_to(root)) for f in root.rglob("*") if f.is_file()]


# ---- per-band folders ---------------------------------------------------------------
def _band_folder(d: Path) -> SourceProduct | None:
    files = sorted(f for f in d.iterdir() if f.is_file() and f.suffix.lower() in RASTER_SUFFIXES)
    s2 = {}
    s1 = {}
    for f in files:
        if m := S.S2_BAND_RE.search(f.name):
            s2[m.group(1).upper()] = BandSource(str(f))
        elif m := S.S1_BAND_RE.search(f.name):
            s1[m.group(1).upper()] = BandSource(str(f))
    if s2:
        return _s2_product(d, s2, [f.name for f in files])
    if s1:
        return _s1_product(d, s1)
    return None


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y%m%dT%H%M%S")


def _s2_metadata(names: list[str], folder: Path) -> dict[str, object]:
    """Platform, level, tile and sensing time from file names (and OSCD's dates.txt)."""
    joined = " ".join([folder.name, *names])
    meta: dict[str, object] = {}
    if m := S.S2_PLATFORM_RE.search(joined):
        meta["platform"] = m.group(1)
    if m := re.search(r"MSI_?(L1C|L2A)", joined):
        meta["processing_level"] = m.group(1)
    elif re.search(r"_\d{2}m\.jp2", joined):
        meta["processing_level"] = "L2A"
    if m := S.S2_TILE_RE.search(joined):
        meta["tile_id"] = m.group(1)
    for rx in (S.S2_COMPACT_TIME_RE, S.S2_PRODUCT_TIME_RE):
        if m := rx.search(joined):
            meta["acquired"] = _parse_time(m.group(1))
            break
    else:
        if m := S.S2_OLD_TIME_RE.search(joined):
            # old granule names carry the processing time: keep only its day
            meta["acquired"] = _parse_time(m.group(1)).replace(hour=0, minute=0, second=0)
    # OSCD keeps the sensing dates beside imgs_1/imgs_2; old granule names only carry
    # the processing time, so the dataset's own date wins.
    dates = folder.parent / "dates.txt"
    if folder.name in ("imgs_1", "imgs_2") and dates.exists():
        key = "date_1" if folder.name == "imgs_1" else "date_2"
        for line in dates.read_text().splitlines():
            if line.startswith(key):
                day = dt.datetime.strptime(line.split(":")[1].strip(), "%Y%m%d")
                prev = meta.get("acquired")
                same_day = isinstance(prev, dt.datetime) and prev.date() == day.date()
                meta["acquired"] = prev if same_day else day
    labels = next(folder.glob("*_labels_metadata.json"), None)
    if labels is not None:  # BigEarthNet patches
        info = json.loads(labels.read_text())
        if "acquisition_date" in info:
            meta["acquired"] = dt.datetime.fromisoformat(info["acquisition_date"])
        if m := S.S2_TILE_RE.search(info.get("tile_source", "")):
            meta["tile_id"] = m.group(1)
    return meta


def _s2_product_id(meta: dict[str, object], folder: Path) -> str:
    acquired, tile = meta.get("acquired"), meta.get("tile_id")
    if re.match(r"S2[ABC]_MSIL(1C|2A)_\d{8}T\d{6}_\d+_\d+$", folder.name):
        return folder.name  # BigEarthNet patch: many per tile and time
    if isinstance(acquired, dt.datetime) and tile:
        stem = f"{meta.get('platform', 'S2')}_MSI{meta.get('processing_level', 'L1C')}"
        return f"{stem}_{acquired:%Y%m%dT%H%M%S}_T{tile}"
    return folder.stem


def required_s2_bands(level: str | None, present: set[str]) -> tuple[str, ...]:
    return S.S2_L2A_BANDS if level == "L2A" or "B10" not in present and len(present) == 12 else S.S2_BAND_ORDER


def _merge_mtd(meta: dict[str, object], mtd: S2Metadata | None, where: str,
               names: list[str]) -> None:
    """Check the MTD against what the band files say, and fill what they do not."""
    if mtd is None:
        for name in names:
            check_offset_known(name, where)
        return
    check_against_bands(mtd, meta.get("tile_id"), meta.get("platform"), where)  # type: ignore[arg-type]
    meta["tile_id"] = meta.get("tile_id") or mtd.tile_id
    meta["platform"] = mtd.platform or meta.get("platform")
    meta["processing_level"] = mtd.processing_level


def _s2_product(folder: Path, bands: dict[str, BandSource], names: list[str]) -> SourceProduct:
    meta = _s2_metadata(names, folder)
    mtd_path = find_mtd(folder)
    mtd = read_s2_metadata(mtd_path) if mtd_path is not None else None
    if mtd is not None and (tl := find_mtd_tl(folder)) is not None:
        mtd = read_sun_angles(mtd, tl)
    _merge_mtd(meta, mtd, str(folder), [folder.name])
    expected = required_s2_bands(meta.get("processing_level"), set(bands))  # type: ignore[arg-type]
    missing = [b for b in expected if b not in bands]
    if missing:
        raise MissingBandError(
            f"Band {', '.join(missing)} missing in {folder}: expected {len(expected)} bands, "
            f"found {len(bands)}; copy the missing band file(s) into the folder"
        )
    return SourceProduct(
        product_id=_s2_product_id(meta, folder), sensor="S2", source_path=str(folder),
        bands={b: bands[b] for b in expected}, platform=meta.get("platform"),  # type: ignore[arg-type]
        processing_level=meta.get("processing_level") or ("L2A" if "B10" not in bands else "L1C"),  # type: ignore[arg-type]
        tile_id=meta.get("tile_id"), acquired=meta.get("acquired"),  # type: ignore[arg-type]
        s2_metadata=mtd, cloud_masks=masks_near(folder),
    )


def _s1_product(folder: Path, bands: dict[str, BandSource]) -> SourceProduct:
    missing = [b for b in S.S1_BANDS if b not in bands]
    if missing:
        raise MissingBandError(
            f"Band {', '.join(missing)} missing in {folder}: expected VV and VH GeoTIFFs, "
            f"found {', '.join(sorted(bands)) or 'none'}"
        )
    m = S.S1_NAME_RE.search(folder.name) or S.S1_NAME_RE.search(Path(bands["VV"].path).name)
    platform = m.group("platform") if m else None
    acquired = _parse_time(m.group("time")) if m else None
    tile = None
    if t := re.search(r"_(\d{2}[C-X][A-Z]{2})_\d+_\d+$", folder.name):
        tile = t.group(1)  # BigEarthNet S1 patches carry the S2 tile they are matched to
    return SourceProduct(
        product_id=folder.name, sensor="S1", source_path=str(folder),
        bands={b: bands[b] for b in S.S1_BANDS}, platform=platform,
        processing_level="GRD", tile_id=tile, acquired=acquired,
    )


# ---- SAFE -----------------------------------------------------------------------------
def _safe_product(root: Path, display: Path, resolve: Callable[[str], str], files: list[str],
                  read: Callable[[str], bytes]) -> SourceProduct:
    """Bands of a SAFE: L1C IMG_DATA/*_Bxx.jp2, L2A IMG_DATA/R10m|R20m|R60m/*_Bxx_10m.jp2
    (for each band, the finest resolution the product has); its MTD_MSIL*.xml at the root
    (`read(rel)` gives a file's bytes)."""
    best: dict[str, tuple[int, str]] = {}
    for rel in files:
        if "IMG_DATA" not in rel or not rel.lower().endswith(".jp2"):
            continue
        name = Path(rel).name
        m = S.S2_BAND_RE.search(name)
        if not m:
            continue
        band = m.group(1).upper()
        res = int(r.group(1)) if (r := re.search(r"_(\d{2})m\.jp2$", name)) else S.S2_BANDS[band][0]
        if band not in best or res < best[band][0]:
            best[band] = (res, rel)
    if not best:
        raise UnsupportedFormatError(
            f"{display} looks like a SAFE product but has no GRANULE/*/IMG_DATA band files"
        )
    bands = {b: BandSource(resolve(rel)) for b, (_, rel) in best.items()}
    names = [root.name, *[Path(rel).name for _, rel in best.values()]]
    meta = _s2_metadata(names, Path(display))
    mtds = sorted(rel for rel in files if "/" not in rel.replace("\\", "/") and MTD_NAME_RE.search(rel))
    mtd = None
    if mtds:
        mtd = read_s2_metadata(f"{display}/{mtds[0]}", read(mtds[0]))
        tls = sorted(rel for rel in files if re.fullmatch(r"GRANULE/[^/]+/MTD_TL\.xml", rel))
        if tls:
            mtd = read_sun_angles(mtd, f"{display}/{tls[0]}", read(tls[0]))
    _merge_mtd(meta, mtd, str(display), [root.name])
    level = meta.get("processing_level") or ("L2A" if any("_10m." in r for _, r in best.values()) else "L1C")
    meta["processing_level"] = level
    expected = required_s2_bands(level, set(bands))  # type: ignore[arg-type]
    missing = [b for b in expected if b not in bands]
    if missing:
        raise MissingBandError(
            f"Band {', '.join(missing)} missing in {display}: expected {len(expected)} bands, "
            f"found {len(bands)}"
        )
    pid = root.name.removesuffix(".SAFE").removesuffix(".zip")
    return SourceProduct(
        product_id=pid, sensor="S2", source_path=str(display), bands={b: bands[b] for b in expected},
        platform=meta.get("platform"), processing_level=level,  # type: ignore[arg-type]
        tile_id=meta.get("tile_id"), acquired=meta.get("acquired"),  # type: ignore[arg-type]
        s2_metadata=mtd, cloud_masks=find_mask_files(files, resolve),
    )


def _safe_zip(p: Path) -> SourceProduct:
    """A zipped SAFE: the `.SAFE` folder at the zip's root or at any depth inside it
    (`outer/S2..._.SAFE/`); the shallowest one is the product."""
    try:
        with zipfile.ZipFile(p) as z:
            files = [n for n in z.namelist() if not n.endswith("/")]
    except zipfile.BadZipFile as exc:
        raise ProductReadError(f"{p} is not a readable zip archive ({exc}): download it again") from exc
    safes = set()
    for n in files:
        parts = n.split("/")
        i = next((i for i, part in enumerate(parts[:-1]) if part.upper().endswith(".SAFE")), None)
        if i is not None:
            safes.add("/".join(parts[: i + 1]))
    if not safes:
        raise UnsupportedFormatError(
            f"{p} holds no .SAFE folder: expected a zipped Sentinel-2 or Sentinel-1 GRD SAFE")
    safe = min(safes, key=lambda s: (s.count("/"), s))
    inner = [n[len(safe) + 1:] for n in files if n.startswith(safe + "/")]
    if is_s1_safe(safe.rsplit("/", 1)[-1], inner):
        return discover_s1_safe(safe.rsplit("/", 1)[-1], p, inner, SafeFiles(str(p), safe))

    def read(rel: str) -> bytes:
        with zipfile.ZipFile(p) as z:
            return z.read(f"{safe}/{rel}")

    return _safe_product(Path(safe.rsplit("/", 1)[-1]), p,
                         lambda rel: f"/vsizip/{p}/{safe}/{rel}", inner, read)


# ---- single files ------------------------------------------------------------------------
def parse_band_list(text: str | Sequence[str]) -> list[str]:
    """`--bands B02,B03,nir` -> ["B02", "B03", "B08"] (aliases: eominer.sensors)."""
    items = [t.strip() for t in (text.split(",") if isinstance(text, str) else text)]
    unknown = [t for t in items if S.s2_band_name(t) is None]
    if unknown:
        raise UnsupportedFormatError(
            f"unknown band name {', '.join(map(repr, unknown))} in --bands: expected "
            f"Sentinel-2 band ids ({', '.join(S.S2_BAND_ORDER)}) or ESA band names "
            "(blue, green, red, red edge 1, nir, narrow nir, swir 1...)"
        )
    return [S.s2_band_name(t) for t in items]  # type: ignore[misc]


def _stack_order(p: Path, descriptions: Sequence[str | None], given: list[str] | None) -> list[str]:
    """The S2 band of each band of a stack: from `--bands`, else from the descriptions.
    Never guessed: a stack whose descriptions name no band needs `--bands`."""
    count = len(descriptions)
    named = [S.s2_band_name(d) for d in descriptions]
    if given is not None:
        if len(given) != count:
            raise UnsupportedFormatError(
                f"--bands names {len(given)} bands ({', '.join(given)}), but {p} has {count}: "
                "give one name per band of the file, in the file's order"
            )
        if any(named) and named != given:
            raise UnsupportedFormatError(
                f"--bands says {', '.join(given)}, but the band descriptions of {p} say "
                f"{', '.join(d or '(none)' for d in descriptions)}: drop --bands, or fix the "
                "descriptions (`rio edit-info --bidx N --description B02`)"
            )
        order = given
    elif all(named):
        order = named  # type: ignore[assignment]
    elif any(d for d in descriptions):
        bad = [f"band {i} {d!r}" for i, (d, n) in enumerate(zip(descriptions, named), 1) if not n]
        raise UnsupportedFormatError(
            f"{p}: {', '.join(bad)}: not a Sentinel-2 band name (B02, B2, blue, nir, B8A, "
            "red edge 1...); name every band with --bands B02,B03,... in the file's order"
        )
    else:
        raise UnsupportedFormatError(
            f"{p} has {count} bands without band descriptions: eominer does not guess their "
            "order; name them in the file's order with --bands (e.g. `eominer ingest "
            f"{p.name} --bands B02,B03,B04,B08`), or set descriptions with "
            "`rio edit-info --bidx N --description B02`"
        )
    seen: dict[str, int] = {}
    for i, b in enumerate(order, 1):
        if b in seen:
            where = "--bands names" if given is not None else f"the band descriptions of {p} name"
            raise UnsupportedFormatError(
                f"{where} band {b} twice (bands {seen[b]} and {i}): each band may appear once; "
                "fix the names"
            )
        seen[b] = i
    if count < S.S2_MIN_STACK_BANDS:
        raise MissingBandError(
            f"{p} has {count} band{'s' if count != 1 else ''} ({', '.join(order)}): a "
            f"Sentinel-2 stack needs at least {S.S2_MIN_STACK_BANDS} bands"
        )
    return order


def _multiband_file(p: Path, given: list[str] | None = None) -> SourceProduct:
    import rasterio

    try:
        with rasterio.open(p) as ds:
            descriptions = ds.descriptions
            tags = ds.tags()
    except rasterio.errors.RasterioIOError as exc:
        raise ProductReadError(f"cannot open {p}: {exc}; the file may be truncated or corrupt") from exc
    names = [(d or "").upper() for d in descriptions]
    if given is None and names and all(n in S.S1_BANDS for n in names):
        bands = {n: BandSource(str(p), i + 1) for i, n in enumerate(names)}
        return SourceProduct(product_id=p.stem, sensor="S1", source_path=str(p), bands=bands,
                             processing_level="GRD")
    order = _stack_order(p, descriptions, given)
    meta = _s2_metadata([p.name, tags.get("PRODUCT_ID", "")], p.parent)
    bands = {b: BandSource(str(p), i + 1) for i, b in enumerate(order)}
    # the level is known from the name, or from B10 (L2A has none); else unknown
    level = meta.get("processing_level") or ("L1C" if "B10" in bands else None)
    return SourceProduct(
        product_id=p.stem, sensor="S2", source_path=str(p),
        bands={b: bands[b] for b in S.S2_BAND_ORDER if b in bands},  # stored in ESA order
        platform=meta.get("platform"), processing_level=level,  # type: ignore[arg-type]
        tile_id=meta.get("tile_id"), acquired=meta.get("acquired"),  # type: ignore[arg-type]
    )


def _stac_json(p: Path) -> list[SourceProduct]:
    """A STAC Item, or an ItemCollection (a search's results saved as one GeoJSON
    FeatureCollection, e.g. by pystac-client): one product per item. Relative asset hrefs
    are taken from the file's folder."""
    import pystac

    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
        items = list(pystac.ItemCollection.from_dict(doc)) \
            if doc.get("type") == "FeatureCollection" else [pystac.Item.from_file(str(p))]
    except (OSError, ValueError, AttributeError, KeyError, TypeError,
            pystac.STACError) as exc:  # what a bad document raises, in pystac and json
        raise UnsupportedFormatError(f"{p} is not a readable STAC Item or ItemCollection: "
                                     f"{exc}") from exc
    if not items:
        raise UnsupportedFormatError(f"STAC ItemCollection {p} holds no item")
    return [_stac_item(item, p) for item in items]


def _stac_item(item: pystac.Item, p: Path) -> SourceProduct:
    """One item of the STAC file `p` (a pystac.Item)."""
    s2, s1, scales, masks = {}, {}, {}, {}
    files: dict[str, str] = {}  # asset key (lower case) -> local path or URL
    rank: dict[str, tuple[float, bool]] = {}  # band -> (its asset's metres, a JPEG2000 copy)
    for key, asset in item.assets.items():
        local = asset.get_absolute_href() or asset.href
        if not _is_remote(asset.href) and not Path(local).is_absolute():
            local = str(p.parent / asset.href)  # an ItemCollection's items have no self href
        files[key.lower()] = asset.href if _is_remote(asset.href) else str(Path(local).resolve())
        href = gdal_path(asset.href if _is_remote(asset.href) else local)
        stem, metres, copy = _asset_key(key)
        band = _asset_band(stem, asset.extra_fields)
        if band is not None:
            metres = metres or float(asset.extra_fields.get("gsd") or S.S2_BANDS[band][0])
            if band not in rank or (metres, copy) < rank[band]:  # the finest, a COG first
                rank[band] = (metres, copy)
                s2[band], scales[band] = BandSource(href), _raster_scale(asset.extra_fields)
        elif stem.upper() in S.S1_BANDS:
            s1[stem.upper()] = BandSource(href)
        elif stem.upper() == "SCL" and (metres or 20) <= 20:  # an L2A item's classes
            masks["SCL"] = href
    props = item.properties
    platform = str(props.get("platform", "")).upper().replace("SENTINEL-", "S")
    acquired = item.datetime.replace(tzinfo=None) if item.datetime else None
    if s1 and not s2 and is_s1_stac(list(files)):  # measurements in radar geometry
        return discover_s1_stac(item.id, str(p), files, s1, props)
    if s1 and not s2:
        # the track and pass: S1 change pairs must share them (change.align refuses others)
        orbit, state = props.get("sat:relative_orbit"), props.get("sat:orbit_state")
        extra = {**({"relative_orbit": str(int(orbit))} if isinstance(orbit, int) else {}),
                 **({"orbit_direction": str(state).upper()} if state else {})}
        return SourceProduct(product_id=item.id, sensor="S1", source_path=str(p), bands=s1,
                             platform=platform or None, processing_level="GRD",
                             acquired=acquired, extra=extra)
    level = props.get("processing:level") or props.get("s2:processing_level") or (
        "L1C" if "B10" in s2 else "L2A")
    level = "L2A" if "2A" in str(level) else "L1C"
    expected = required_s2_bands(level, set(s2))
    missing = [b for b in expected if b not in s2]
    if missing:
        raise MissingBandError(
            f"Band {', '.join(missing)} missing in STAC item {p}: expected {len(expected)} "
            f"band assets, found {len(s2)}"
        )
    tile = props.get("s2:mgrs_tile") or props.get("mgrs:grid_square")
    if tile is None and "mgrs:utm_zone" in props:
        tile = f"{props['mgrs:utm_zone']}{props.get('mgrs:latitude_band', '')}{props.get('mgrs:grid_square', '')}"
    mtd = stac_s2_metadata(str(p), item.id, props, {b: scales[b] for b in expected}, level,
                           platform or None, tile)
    return SourceProduct(
        product_id=item.id, sensor="S2", source_path=str(p), bands={b: s2[b] for b in expected},
        platform=platform or None, processing_level=level, tile_id=tile, acquired=acquired,
        s2_metadata=mtd, cloud_masks=masks if level == "L2A" else {},
    )


_KEY_SUFFIX = re.compile(r"^(.*?)(?:[-_](\d{2})m)?(?:[-_](jp2))?$", re.I)


def _asset_key(key: str) -> tuple[str, float | None, bool]:
    """An asset key as catalogues write it: (the band part, its metres when the key
    says, a JPEG2000 copy): `B04_10m` (Copernicus), `red-jp2` (Earth Search),
    `B02-20m` (stactools)."""
    m = _KEY_SUFFIX.match(key)
    assert m is not None  # the pattern matches any text
    return m.group(1), float(m.group(2)) if m.group(2) else None, bool(m.group(3))


def _asset_band(stem: str, fields: dict) -> str | None:
    """The Sentinel-2 band an asset holds: the name its `eo:bands` (STAC 1.0) or
    `bands` (1.1) gives, else its key as a band id or a STAC common name (`red`,
    `rededge1`, `nir08`: `sensors.s2_band_name`; the ambiguous `rededge` is B05)."""
    named = [b[0] for b in (fields.get("eo:bands"), fields.get("bands"))
             if isinstance(b, list) and len(b) == 1 and isinstance(b[0], dict)]
    for text in (*(str(b.get("name", "")) for b in named), stem):
        if band := S.s2_band_name(text):
            return band
    return "B05" if stem.lower() == "rededge" else None


def _raster_scale(fields: dict) -> tuple[float, float] | None:
    """(scale, offset) of an asset's first band in the raster extension (v1:
    `raster:bands` with `scale` / `offset`; STAC 1.1 and raster v2: `bands` with
    `raster:scale` / `raster:offset`, or those on the asset itself); None when it gives
    neither."""
    def first(bands: object) -> dict:
        return bands[0] if isinstance(bands, list) and bands and isinstance(bands[0], dict) \
            else {}

    for band, (scale, offset) in ((first(fields.get("raster:bands")), ("scale", "offset")),
                                  (first(fields.get("bands")), ("raster:scale", "raster:offset")),
                                  (fields, ("raster:scale", "raster:offset"))):
        if any(isinstance(band.get(k), int | float) for k in (scale, offset)):
            return float(band.get(scale, 1.0)), float(band.get(offset, 0.0))
    return None


REMOTE_PREFIXES = ("/vsicurl/", "/vsis3/")


def _is_remote(href: str) -> bool:
    return href.lower().startswith(("http://", "https://", "s3://"))


def gdal_path(href: str) -> str:
    """The path GDAL reads an asset href from: http(s) URLs through `/vsicurl/`
    (range requests, nothing downloaded whole), `s3://bucket/key` through
    `/vsis3/bucket/key` (credentials from the usual AWS_* settings); local paths as
    they are."""
    low = href.lower()
    if low.startswith(("http://", "https://")):
        return f"/vsicurl/{href}"
    if low.startswith("s3://"):
        return f"/vsis3/{href[5:]}"
    return href


def remote_href(path: str) -> str | None:
    """The URL a `/vsicurl/` or `/vsis3/` path was made from (None for local paths)."""
    if path.startswith("/vsicurl/"):
        return path.removeprefix("/vsicurl/")
    if path.startswith("/vsis3/"):
        return "s3://" + path.removeprefix("/vsis3/")
    return None
