"""Sentinel-2 product metadata: `MTD_MSIL1C.xml` / `MTD_MSIL2A.xml`, read in one place.

Source: Sentinel-2 Products Specification Document (S2-PDGS-TAS-DI-PSD, v14.9) and the
"Sentinel-2: processing baseline 04.00" note (ESA, Jan 2022). Since baseline 04.00
(products sensed from 25 January 2022) digital numbers are
`reflectance = (DN + ADD_OFFSET) / QUANTIFICATION_VALUE`, with ADD_OFFSET = -1000 per band
(`RADIO_ADD_OFFSET` in L1C, `BOA_ADD_OFFSET` in L2A); older products have no offset
elements and read as offset 0. DN 0 is nodata in every baseline.

The granule's `MTD_TL.xml` gives the mean sun zenith and azimuth of the tile
(`Geometric_Info/Tile_Angles/Mean_Sun_Angle`, degrees); it is read when found beside the
product metadata (see `find_mtd_tl`) and must be of the same tile.

Where the file is looked for (see `find_mtd`): at the root of a SAFE; for a folder of band
files, in the folder itself, one level up, and at the root of a `.SAFE` folder above it
(GRANULE/<id>/IMG_DATA is three levels below it).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from eominer import sensors as S
from eominer.domain import S2Metadata
from eominer.errors import ProductReadError

# Names the metadata file has in a SAFE, or renamed after its product (`<id>_MTD_MSIL1C.xml`).
MTD_NAME_RE = re.compile(r"(?:^|_)MTD_MSIL(1C|2A)\.xml$", re.I)
# Processing baseline in product names: S2B_MSIL1C_20230601T094549_N0509_R079_T34UDD_...
BASELINE_IN_NAME_RE = re.compile(r"MSIL(?:1C|2A)_\d{8}T\d{6}_N(\d{2})(\d{2})_")
OFFSET_BASELINE = "04.00"  # first baseline with a radiometric add-offset


def _text(root: ET.Element, tag: str) -> str | None:
    el = root.find(f".//{tag}")
    return el.text.strip() if el is not None and el.text and el.text.strip() else None


def _band_name(physical: str) -> str | None:
    """'B1' -> 'B01', 'B8A' -> 'B8A'."""
    m = re.fullmatch(r"B(\d{1,2})(A?)", physical.strip().upper())
    if not m:
        return None
    name = f"B{int(m.group(1)):02d}" if not m.group(2) else f"B{int(m.group(1))}A"
    return name if name in S.S2_BANDS else None


def read_s2_metadata(path: str | Path, data: bytes | None = None) -> S2Metadata:
    """Parse one MTD_MSIL1C.xml / MTD_MSIL2A.xml (`data`: its bytes, e.g. from a zip)."""
    where = str(path)
    try:
        raw = data if data is not None else Path(path).read_bytes()
    except OSError as exc:
        raise ProductReadError(f"cannot read Sentinel-2 metadata {where}: {exc}") from exc
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        raise ProductReadError(
            f"Sentinel-2 metadata {where} is not valid XML ({exc}): the file is truncated or "
            "corrupt; copy MTD_MSIL1C.xml / MTD_MSIL2A.xml again from the product's SAFE"
        ) from exc
    tag = root.tag.rsplit("}", 1)[-1]
    level = "L1C" if tag == "Level-1C_User_Product" else "L2A" if tag == "Level-2A_User_Product" else None
    if level is None:
        raise ProductReadError(
            f"{where} is not Sentinel-2 product metadata: expected a Level-1C_User_Product or "
            f"Level-2A_User_Product document, got <{tag}>; use the MTD_MSIL1C.xml / "
            "MTD_MSIL2A.xml at the root of the product's SAFE"
        )
    quant_tag = "QUANTIFICATION_VALUE" if level == "L1C" else "BOA_QUANTIFICATION_VALUE"
    offset_tag = "RADIO_ADD_OFFSET" if level == "L1C" else "BOA_ADD_OFFSET"
    quant = _text(root, quant_tag)
    if quant is None:
        raise ProductReadError(
            f"Sentinel-2 metadata {where} has no {quant_tag}: the file is incomplete; copy it "
            "again from the product's SAFE"
        )
    band_ids = {el.get("bandId"): _band_name(el.get("physicalBand", ""))
                for el in root.iter("Spectral_Information")}
    offsets: dict[str, float] = {}
    for el in root.iter(offset_tag):
        band = band_ids.get(el.get("band_id"))
        if band is None:
            raise ProductReadError(
                f"Sentinel-2 metadata {where}: {offset_tag} band_id={el.get('band_id')!r} has "
                "no Spectral_Information entry naming its band; the file is incomplete"
            )
        offsets[band] = float((el.text or "").strip())
    spacecraft = _text(root, "SPACECRAFT_NAME")  # "Sentinel-2B"
    platform = None
    if spacecraft and (m := re.search(r"Sentinel-2([ABC])", spacecraft, re.I)):
        platform = f"S2{m.group(1).upper()}"
    uri = _text(root, "PRODUCT_URI")
    tile = None
    for source in (uri, *(el.get("granuleIdentifier") for el in root.iter("Granule")),
                   _text(root, "IMAGE_FILE")):
        if source and (m := re.search(r"_T(\d{2}[C-X][A-Z]{2})(?:_|$)", source)):
            tile = m.group(1)
            break
    orbit = _text(root, "SENSING_ORBIT_NUMBER")
    cloud = _text(root, "Cloud_Coverage_Assessment")
    return S2Metadata(
        path=where, product_uri=uri, processing_level=level,
        product_type=_text(root, "PRODUCT_TYPE"),
        processing_baseline=_text(root, "PROCESSING_BASELINE"), platform=platform,
        relative_orbit=int(orbit) if orbit else None,
        orbit_direction=_text(root, "SENSING_ORBIT_DIRECTION"),
        cloud_cover=float(cloud) if cloud is not None else None,
        quantification=float(quant), offsets=offsets, tile_id=tile,
    )


def stac_s2_metadata(where: str, item_id: str, props: Mapping[str, object],
                     rasters: Mapping[str, tuple[float, float] | None], level: str,
                     platform: str | None, tile_id: str | None) -> S2Metadata:
    """The metadata of a Sentinel-2 STAC Item: its properties (`eo:cloud_cover`,
    `s2:processing_baseline` or `processing:version`, `sat:relative_orbit`,
    `sat:orbit_state`, `view:sun_elevation` / `view:sun_azimuth`) and each band asset's
    raster scale and offset (`rasters`: band -> (scale, offset) in the raster extension's
    sense, value = DN x scale + offset; None where the asset says nothing).

    The offset, in this order: Earth Search's `earthsearch:boa_offset_applied: true`
    means its COGs hold DN with the offset already applied (offset 0, whatever its
    raster:bands say); else the assets' scale and offset (quantification 1 / scale,
    add-offset offset / scale DN); else none, which a baseline >= 04.00 (from the
    properties or the id) refuses: read as offset 0, every band would be 0.1 too bright."""
    baseline = next((str(props[k]) for k in ("s2:processing_baseline", "processing:version")
                     if re.fullmatch(r"\d{2}\.\d{2}", str(props.get(k, "")))), None) \
        or baseline_in_name(item_id)
    given = {b: so for b, so in rasters.items() if so is not None}
    quant, offsets = S.S2_REFLECTANCE_SCALE, {}
    if props.get("earthsearch:boa_offset_applied") is True:
        pass
    elif given:
        scales = {round(sc, 12) for sc, _ in given.values()}
        scale = next(iter(scales))
        if len(scales) > 1 or scale <= 0:
            raise ProductReadError(
                f"STAC item {where}: its band assets give raster scales {sorted(scales)}; "
                "eominer reads Sentinel-2 bands of one positive scale: fix the item's "
                "raster:bands")
        late = sorted(set(rasters) - set(given))
        if late and baseline is not None and baseline >= OFFSET_BASELINE:
            raise ProductReadError(
                f"STAC item {where} is processing baseline {baseline} but band(s) "
                f"{', '.join(late)} give no raster offset: add raster:bands scale and "
                "offset to every band asset")
        quant = round(1.0 / scale, 6)
        offsets = {b: round(off / sc, 6) for b, (sc, off) in given.items() if off}
    elif baseline is not None and baseline >= OFFSET_BASELINE:
        raise ProductReadError(
            f"STAC item {where} is processing baseline {baseline} (>= {OFFSET_BASELINE}, "
            "reflectance offset -1000) but its band assets give no raster:bands scale and "
            "offset: add them to the item (scale 0.0001, offset -0.1 for ESA's DN), or "
            "ingest the product's SAFE")

    def number(*keys: str) -> float | None:
        v = next((props[k] for k in keys if isinstance(props.get(k), int | float)), None)
        return float(v) if v is not None else None

    elevation = number("view:sun_elevation")
    zenith = 90.0 - elevation if elevation is not None else number("s2:mean_solar_zenith")
    orbit = number("sat:relative_orbit", "s2:relative_orbit")
    state = props.get("sat:orbit_state")
    return S2Metadata(
        path=where, product_uri=item_id, processing_level=level,
        product_type=str(props["s2:product_type"]) if props.get("s2:product_type") else None,
        processing_baseline=baseline, platform=platform,
        relative_orbit=int(orbit) if orbit is not None else None,
        orbit_direction=str(state).upper() if state else None,
        cloud_cover=number("eo:cloud_cover"), quantification=quant, offsets=offsets,
        tile_id=tile_id, sun_zenith=zenith,
        sun_azimuth=number("view:sun_azimuth", "s2:mean_solar_azimuth"),
    )


TL_NAME_RE = re.compile(r"(?:^|_)MTD_TL\.xml$", re.I)


def read_sun_angles(meta: S2Metadata, path: str | Path, data: bytes | None = None) -> S2Metadata:
    """`meta` with the mean sun angles of its granule's MTD_TL.xml (`data`: its bytes).

    The tile metadata must be of the product's tile: another tile's angles would be
    silently wrong, so it is refused."""
    where = str(path)
    try:
        root = ET.fromstring(data if data is not None else Path(path).read_bytes())
    except (OSError, ET.ParseError) as exc:
        raise ProductReadError(
            f"Sentinel-2 tile metadata {where} cannot be read ({exc}): the file is truncated "
            "or corrupt; copy MTD_TL.xml again from the product's GRANULE folder"
        ) from exc
    tag = root.tag.rsplit("}", 1)[-1]
    if tag not in ("Level-1C_Tile_ID", "Level-2A_Tile_ID"):
        raise ProductReadError(
            f"{where} is not Sentinel-2 tile metadata: expected a Level-1C_Tile_ID or "
            f"Level-2A_Tile_ID document, got <{tag}>"
        )
    tile_text = _text(root, "TILE_ID") or ""
    tile = m.group(1) if (m := re.search(r"_T(\d{2}[C-X][A-Z]{2})(?:_|$)", tile_text)) else None
    if tile and meta.tile_id and tile != meta.tile_id:
        raise ProductReadError(
            f"Sentinel-2 tile metadata {where} is of tile {tile}, but the product "
            f"{meta.path} is of tile {meta.tile_id}: put the granule's own MTD_TL.xml "
            "beside its IMG_DATA folder"
        )
    sun = root.find(".//Tile_Angles/Mean_Sun_Angle")
    if sun is None:
        return meta
    zen, az = _text(sun, "ZENITH_ANGLE"), _text(sun, "AZIMUTH_ANGLE")
    return replace(meta, sun_zenith=float(zen) if zen else None,
                   sun_azimuth=float(az) if az else None)


def find_mtd_tl(folder: Path) -> Path | None:
    """The granule's MTD_TL.xml for a folder of band files: in the folder, or in the
    granule folder above IMG_DATA (L1C: one level up; L2A's R10m: two levels up)."""
    for place in (folder, folder.parent, folder.parent.parent):
        if place.is_dir():
            found = sorted(f for f in place.iterdir() if f.is_file() and TL_NAME_RE.search(f.name))
            if found:
                return found[0]
        if place.name == "GRANULE":
            break
    return None


def find_mtd(folder: Path) -> Path | None:
    """The MTD_MSIL*.xml for a folder of band files: in the folder, one level up, or at
    the root of the nearest `.SAFE` folder above it (at most 4 levels). Two candidates in
    one place are ambiguous and refused."""
    places = [folder, folder.parent]
    for up in list(folder.parents)[:4]:
        if up.suffix.upper() == ".SAFE":
            places.append(up)
            break
    for place in dict.fromkeys(places):
        if not place.is_dir():
            continue
        found = sorted(f for f in place.iterdir() if f.is_file() and MTD_NAME_RE.search(f.name))
        if len(found) > 1:
            raise ProductReadError(
                f"{place} holds {len(found)} Sentinel-2 metadata files "
                f"({', '.join(f.name for f in found)}) for the bands in {folder}: keep only the "
                "one of this product"
            )
        if found:
            return found[0]
    return None


def baseline_in_name(name: str) -> str | None:
    """The processing baseline a product name carries (`..._N0509_...` -> "05.09")."""
    m = BASELINE_IN_NAME_RE.search(name)
    return f"{m.group(1)}.{m.group(2)}" if m else None


def check_against_bands(meta: S2Metadata, tile_id: str | None, platform: str | None,
                        where: str) -> None:
    """Refuse metadata that contradicts the band files' names (another MGRS tile, another
    spacecraft)."""
    if meta.tile_id and tile_id and meta.tile_id != tile_id:
        raise ProductReadError(
            f"Sentinel-2 metadata {meta.path} is of tile {meta.tile_id}, but the band files "
            f"in {where} are of tile {tile_id}: that metadata belongs to another product; "
            "put the product's own MTD_MSIL*.xml beside its bands"
        )
    if meta.platform and platform and meta.platform != platform:
        raise ProductReadError(
            f"Sentinel-2 metadata {meta.path} is of {meta.platform}, but the names in {where} "
            f"say {platform}: that metadata belongs to another product; put the product's "
            "own MTD_MSIL*.xml beside its bands"
        )


def check_offset_known(name: str, where: str) -> None:
    """A product named with baseline >= 04.00 but without metadata: its add-offset is
    unknown, and reading it as offset 0 would bias every band by +0.1 reflectance."""
    baseline = baseline_in_name(name)
    if baseline is not None and baseline >= OFFSET_BASELINE:
        raise ProductReadError(
            f"{where} is processing baseline {baseline} (>= {OFFSET_BASELINE}, reflectance "
            "offset -1000) but has no MTD_MSIL1C.xml / MTD_MSIL2A.xml: copy the product's "
            "metadata file beside its bands (or into the SAFE root)"
        )
