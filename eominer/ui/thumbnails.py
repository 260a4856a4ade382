"""Small PNG images of patches and products, for the patch grid and the product list,
and contact sheets of patches for the CLI (`session round --sheet`)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from eominer.store.records import Product
from eominer.ui.layers import colour_bands, read_view, stretch_of, to_rgb

if TYPE_CHECKING:
    from eominer.store import Store


def png_bytes(rgba: np.ndarray) -> bytes:
    """(rows, cols, 4) uint8 -> PNG (Pillow ships with bokeh/panel)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def patch_thumbnails(product: Product, windows: list[tuple[int, int, int]], false_colour: bool,
                     size: int = 96, context: float = 0.0) -> list[str]:
    """Data URLs of patches given as (x_off, y_off, size_px) of one product, stretched
    like the map so that the grid and the map look alike. The COG is opened once for
    the whole batch (opening a full tile's COG costs more than reading one patch)."""
    return [data_url(png_bytes(img))
            for img in product_images(product, windows, false_colour, size, context)]


def product_images(product: Product, windows: list[tuple[int, int, int]],
                   false_colour: bool, size: int, context: float = 0.0,
                   outline: bool = False) -> list[np.ndarray]:
    """(size, size, 4) uint8 images of patches (x_off, y_off, size_px) of one product,
    with `context` patch widths of surroundings on each side (the patch outlined when
    `outline`), read from its COG opened once."""
    from PIL import Image, ImageDraw

    stretch = product_stretch(product, false_colour)
    margins = [int(s * context) for _, _, s in windows]
    blocks = read_windows(product.ard_path, colour_bands(product, false_colour), [
        (x - m, y - m, s + 2 * m) for (x, y, s), m in zip(windows, margins)])
    out = []
    for m, data in zip(margins, blocks):
        img = Image.fromarray(to_rgb(data, stretch), "RGBA").resize(
            (size, size), Image.Resampling.NEAREST)
        if outline and m:
            at = size * m / data.shape[-1]  # the patch's edge in the resized image
            ImageDraw.Draw(img).rectangle((at, at, size - 1 - at, size - 1 - at),
                                          outline=(255, 221, 0, 255))
        out.append(np.asarray(img))
    return out


def read_windows(path: str, bands: list[int], squares: list[tuple[int, int, int]]
                 ) -> list[np.ndarray]:
    """(bands, s, s) blocks at (x, y, s) from one open dataset; the parts outside the
    raster are 0 (nodata), read without GDAL's slower boundless path."""
    from pathlib import Path

    import rasterio
    from rasterio.windows import Window

    from eominer.errors import ProductReadError

    if not Path(path).exists():
        raise ProductReadError(
            f"analysis-ready file {path} is missing: re-ingest its product "
            "(eominer ingest SOURCE)")
    out = []
    try:
        with rasterio.open(path) as ds:
            for x, y, s in squares:
                block = np.zeros((len(bands), s, s), ds.dtypes[0])
                x0, y0 = max(x, 0), max(y, 0)
                x1, y1 = min(x + s, ds.width), min(y + s, ds.height)
                if x1 > x0 and y1 > y0:
                    block[:, y0 - y:y1 - y, x0 - x:x1 - x] = ds.read(
                        bands, window=Window(x0, y0, x1 - x0, y1 - y0))
                out.append(block)
    except rasterio.errors.RasterioIOError as exc:
        raise ProductReadError(f"cannot read analysis-ready file {path}: {exc}; re-ingest "
                               "its product") from exc
    return out


_STRETCH: dict[tuple[str, bool], tuple[np.ndarray, np.ndarray]] = {}


def product_stretch(product: Product, false_colour: bool) -> tuple[np.ndarray, np.ndarray]:
    """Percentile stretch of a product's composite from a small overview read (cached
    per product: the same for every user, it is a property of the data)."""
    key = (product.ard_path, false_colour)
    if key not in _STRETCH:
        data, _ = read_view(product, colour_bands(product, false_colour), None, None, 256)
        _STRETCH[key] = stretch_of(data)
    return _STRETCH[key]


def product_thumbnail(product: Product, size: int = 64) -> str:
    """Data URL of the whole product in true colour, `size` px on its longest side."""
    try:
        data, _ = read_view(product, colour_bands(product, False), None, None, size)
        return data_url(png_bytes(to_rgb(data, product_stretch(product, False))))
    except Exception:  # a vanished file shows as an empty thumbnail; the map says why
        return ""


def patch_images(store: Store, patch_ids: Sequence[int], false_colour: bool = False,
                 size: int = 128, context: float = 0.0) -> list[np.ndarray]:
    """`product_images` of patches of any products, in the order given, the patch
    outlined in its surroundings. Each product's COG is opened once."""
    from eominer.errors import ProductReadError

    windows = store.patch_windows(patch_ids)
    by_product: dict[str, list[int]] = {}
    for k, w in enumerate(windows):
        by_product.setdefault(w.product_id, []).append(k)
    out: list[np.ndarray] = [np.empty(0)] * len(windows)
    for prod, ks in by_product.items():
        product = store.product(prod)
        if product is None:
            raise ProductReadError(f"product {prod} is no longer in {store.url}: re-ingest it")
        images = product_images(product, [windows[k].square for k in ks], false_colour,
                                size, context, outline=True)
        for k, img in zip(ks, images):
            out[k] = img
    return out


def contact_sheet(images: Sequence[np.ndarray], captions: Sequence[str], columns: int = 5,
                  pad: int = 6) -> np.ndarray:
    """Equal-sized RGBA images in a grid on white, row by row, each with its caption
    under it: (rows, cols, 4) uint8."""
    from PIL import Image, ImageDraw, ImageFont

    if not images:
        raise ValueError("a contact sheet needs at least one image")
    h, w = images[0].shape[:2]
    font = ImageFont.load_default(size=max(10, min(14, w // 9)))
    line = int(font.size * 1.5)
    columns = max(1, min(columns, len(images)))
    rows = -(-len(images) // columns)
    sheet = Image.new("RGBA", (pad + columns * (w + pad), pad + rows * (h + line + pad)),
                      (255, 255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for k, (img, text) in enumerate(zip(images, captions, strict=True)):
        x, y = pad + (k % columns) * (w + pad), pad + (k // columns) * (h + line + pad)
        tile = Image.new("RGBA", (w, h), (200, 200, 200, 255))  # nodata shows grey
        tile.alpha_composite(Image.fromarray(np.ascontiguousarray(img), "RGBA"))
        sheet.paste(tile, (x, y))
        draw.text((x, y + h + 2), text, fill=(0, 0, 0, 255), font=font)
    return np.asarray(sheet)
