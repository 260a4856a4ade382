"""Small PNG images of patches and products, for the patch grid and the product list."""

from __future__ import annotations

import base64
import io

import numpy as np

from eominer.ui.layers import colour_bands, read_view, stretch_of, to_rgb


def png_bytes(rgba: np.ndarray) -> bytes:
    """(rows, cols, 4) uint8 -> PNG (Pillow ships with bokeh/panel)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def patch_thumbnails(product: dict, windows: list[tuple[int, int, int]], false_colour: bool,
                     size: int = 96, context: float = 0.0) -> list[str]:
    """Data URLs of patches given as (x_off, y_off, size_px) of one product, stretched
    like the map so that the grid and the map look alike."""
    from PIL import Image

    from eominer.io.ard import read_ard

    bands = colour_bands(product, false_colour)
    stretch = product_stretch(product, false_colour)
    out = []
    for x, y, s in windows:
        pad = int(s * context)
        data = read_ard(product["ard_path"], window=(x - pad, y - pad, s + 2 * pad, s + 2 * pad),
                        bands=bands, boundless=True)
        img = Image.fromarray(to_rgb(data, stretch), "RGBA").resize(
            (size, size), Image.Resampling.NEAREST)
        out.append(data_url(png_bytes(np.asarray(img))))
    return out


_STRETCH: dict[tuple[str, bool], tuple[np.ndarray, np.ndarray]] = {}


def product_stretch(product: dict, false_colour: bool) -> tuple[np.ndarray, np.ndarray]:
    """Percentile stretch of a product's composite from a small overview read (cached
    per product: the same for every user, it is a property of the data)."""
    key = (product["ard_path"], false_colour)
    if key not in _STRETCH:
        data, _ = read_view(product, colour_bands(product, false_colour), None, None, 256)
        _STRETCH[key] = stretch_of(data)
    return _STRETCH[key]


def product_thumbnail(product: dict, size: int = 64) -> str:
    """Data URL of the whole product in true colour, `size` px on its longest side."""
    try:
        data, _ = read_view(product, colour_bands(product, False), None, None, size)
        return data_url(png_bytes(to_rgb(data, product_stretch(product, False))))
    except Exception:  # a vanished file shows as an empty thumbnail; the map says why
        return ""
