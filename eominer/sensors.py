"""Sensor facts: band names, resolutions, wavelengths and file-name patterns.

Sources: ESA Sentinel-2 User Handbook (ESA-EOPG-CSCOP-TN-0024, issue 1.2, table 1:
spectral bands, central wavelengths for S2A) and the Sentinel-2 Products Specification
Document (S2-PDGS-TAS-DI-PSD, naming conventions for tiles, granules and SAFE);
Sentinel-1 User Handbook (GMES-S1OP-EOPG-TN-13-0001) for GRD polarisations.
"""

from __future__ import annotations

import re

# Sentinel-2 MSI: band -> (native resolution in m, central wavelength in nm, name).
S2_BANDS: dict[str, tuple[int, float, str]] = {
    "B01": (60, 442.7, "coastal aerosol"),
    "B02": (10, 492.4, "blue"),
    "B03": (10, 559.8, "green"),
    "B04": (10, 664.6, "red"),
    "B05": (20, 704.1, "red edge 1"),
    "B06": (20, 740.5, "red edge 2"),
    "B07": (20, 782.8, "red edge 3"),
    "B08": (10, 832.8, "nir"),
    "B8A": (20, 864.7, "narrow nir"),
    "B09": (60, 945.1, "water vapour"),
    "B10": (60, 1373.5, "swir cirrus"),
    "B11": (20, 1613.7, "swir 1"),
    "B12": (20, 2202.4, "swir 2"),
}
# Band order of every S2 analysis-ready COG eominer writes (ESA order, B8A after B08).
S2_BAND_ORDER: tuple[str, ...] = tuple(S2_BANDS)
S2_10M_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B08")
# L2A products have no cirrus band B10 (removed by Sen2Cor).
S2_L2A_BANDS: tuple[str, ...] = tuple(b for b in S2_BAND_ORDER if b != "B10")
# L1C/L2A digital numbers are reflectance x 10000 (PSD, "QUANTIFICATION_VALUE").
S2_REFLECTANCE_SCALE = 10000.0

# Sentinel-2 quality masks (Products Specification Document S2-PDGS-TAS-DI-PSD v14.9; the
# Sen2Cor Scene Classification of the L2A Algorithm Theoretical Basis Document).
# L2A scene classification, GRANULE/*/IMG_DATA/R20m/*_SCL_20m.jp2 (also R60m), one class
# per pixel: 0 no data, 1 saturated or defective, 2 dark area / topographic shadow,
# 3 cloud shadow, 4 vegetation, 5 not vegetated, 6 water, 7 unclassified, 8 cloud medium
# probability, 9 cloud high probability, 10 thin cirrus, 11 snow or ice.
S2_SCL_CLASSES: dict[str, tuple[int, ...]] = {
    "cloud": (8, 9, 10), "shadow": (3,), "snow": (11,), "water": (6,),
}
S2_SCL_RE = re.compile(r"(?:^|_)SCL_(\d{2})m\.jp2$", re.I)
# Baseline >= 04.00 (L1C and L2A): GRANULE/*/QI_DATA/MSK_CLASSI_B00.jp2, 60 m, three
# bands, 1 = set: 1 opaque clouds, 2 cirrus clouds, 3 snow and ice.
S2_MSK_CLASSI_BANDS: dict[str, int] = {"opaque": 1, "cirrus": 2, "snow": 3}
S2_MSK_CLASSI_RE = re.compile(r"(?:^|/)MSK_CLASSI_B00\.jp2$", re.I)
# Before 04.00: GRANULE/*/QI_DATA/MSK_CLOUDS_B00.gml, cloud polygons in the tile's CRS,
# typed OPAQUE or CIRRUS; no polygon means no cloud. Old (before Dec 2016) products name
# it S2A_OPER_MSK_CLOUDS_SGS__<time>_A<orbit>_T<tile>_B00_MSIL1C.gml.
S2_MSK_CLOUDS_RE = re.compile(r"MSK_CLOUDS_(?:\S*_)?B00(?:_MSIL1C)?\.gml$", re.I)
S2_MSK_CLOUDS_TYPES: tuple[str, ...] = ("OPAQUE", "CIRRUS")

# Names a band of a multi-band stack may go by (its band description, or `ingest --bands`),
# matched case-insensitively with spaces, "_" and "-" ignored ("Red Edge 1" = "rededge1"):
# - the band id, with or without its leading zero: "B02", "B2", "b02", "B8A", "b8a";
# - ESA's band name (User Handbook table 1, S2_BANDS above): "coastal aerosol", "blue",
#   "green", "red", "red edge 1".."red edge 3", "nir", "narrow nir", "water vapour",
#   "swir cirrus", "swir 1", "swir 2"; and the forms below, from the same table and from
#   STAC's eo:common_name: "coastal", "vegetation red edge 1".."3", "nir narrow",
#   "nir08", "nir09", "water vapor", "cirrus", "swir16", "swir22".
# STAC's plain "rededge" is refused: it does not say which of B05, B06, B07 it is.
S2_BAND_ALIASES: dict[str, str] = {
    **{b.lower(): b for b in S2_BANDS},
    **{f"b{b[1:].lstrip('0')}".lower(): b for b in S2_BANDS},
    **{name.replace(" ", ""): b for b, (_, _, name) in S2_BANDS.items()},
    "coastal": "B01", "vegetationrededge1": "B05", "vegetationrededge2": "B06",
    "vegetationrededge3": "B07", "nirnarrow": "B8A", "nir08": "B8A", "nir09": "B09",
    "watervapor": "B09", "cirrus": "B10", "swir16": "B11", "swir22": "B12",
}
# The fewest bands a Sentinel-2 stack may have (three make an RGB or a false colour).
S2_MIN_STACK_BANDS = 3


def s2_band_name(text: str | None) -> str | None:
    """The S2 band id a band description or `--bands` entry names, or None."""
    if not text:
        return None
    return S2_BAND_ALIASES.get(re.sub(r"[\s_\-]+", "", text).lower())


# Sentinel-1 GRD polarisations, in ARD band order.
S1_BANDS: tuple[str, ...] = ("VV", "VH")

# File-name patterns. Tile ids are MGRS (5 chars: zone, latitude band, 2-letter square).
# Old (before Dec 2016) granule names:
#   S2A_OPER_MSI_L1C_TL_SGS__20160504T163055_A004524_T30TXQ_B01.tif
# Compact names (PSD 14.x) for band files:  T30TXQ_20171026T110131_B01.jp2
# BigEarthNet patch names:  S2A_MSIL2A_20170617T113321_36_85_B01.tif
S2_BAND_RE = re.compile(r"(?:^|_)(B(?:0[1-9]|1[0-2]|8A))(?:_\d+m)?\.(?:tif|tiff|jp2)$", re.I)
S2_TILE_RE = re.compile(r"(?:^|[_\s/])T(\d{2}[C-X][A-Z]{2})(?:[_\s]|$)")
S2_PLATFORM_RE = re.compile(r"(?:^|[/_\s])(S2[ABC])_")
# Compact (T..._YYYYMMDDTHHMMSS_) carries the sensing time; the old granule name carries
# the processing time after OPER_MSI_L1C_TL_<site>_ (acquisition must come from elsewhere).
S2_COMPACT_TIME_RE = re.compile(r"T\d{2}[C-X][A-Z]{2}_(\d{8}T\d{6})_")
S2_PRODUCT_TIME_RE = re.compile(r"MSI(?:L1C|L2A)_(\d{8}T\d{6})")
S2_OLD_TIME_RE = re.compile(r"_(\d{8}T\d{6})_A\d{6}_")
S1_BAND_RE = re.compile(r"(?:^|_)(VV|VH|HH|HV)\.(?:tif|tiff)$", re.I)
S1_NAME_RE = re.compile(
    r"(?P<platform>S1[ABC])_(?P<mode>IW|EW|SM|WV)_GRD(?P<res>[HFM])_1S(?P<pol>[DS][VH])_"
    r"(?P<time>\d{8}T\d{6})"
)
