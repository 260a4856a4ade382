"""Contact sheets of patches for the terminal: the options and the writer that
`session round`, `session next`, `session verify` and `search` share."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click
import numpy as np

if TYPE_CHECKING:
    from click.decorators import FC

    from eominer.store import Store


def sheet_options(f: FC) -> FC:
    """--sheet FILE.png, --false-colour, --context: the patches as a contact sheet."""

    def png(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
        if value and not value.lower().endswith(".png"):
            raise click.BadParameter("the contact sheet is a PNG: name it FILE.png")
        folder = Path(value or ".").resolve().parent
        if value and not (folder.is_dir() and os.access(folder, os.W_OK)):
            # checked before the work: a round is not run twice for an unwritable sheet
            raise click.BadParameter(f"cannot write {value}: {folder} is not a folder you "
                                     "can write to")
        return value

    for option in reversed((
        click.option("--sheet", type=click.Path(dir_okay=False), default=None,
                     metavar="FILE.png", callback=png,
                     help="Also draw the patches as a contact sheet: each in colour, as "
                          "on the app's map, under its place in the list, patch id and "
                          "score (or similarity), to look at before answering."),
        click.option("--false-colour", is_flag=True, help="--sheet: NIR, red, green "
                     "instead of true colour (S1: VV/VH either way)."),
        click.option("--context", type=click.FloatRange(0.0, 2.0), default=0.5,
                     show_default=True, help="--sheet: surroundings shown on each side, "
                     "in patch widths; the patch is outlined."),
    )):
        f = option(f)
    return f


def write_sheet(store: Store, path: Path, ids: np.ndarray, values: np.ndarray | None,
                false_colour: bool, context: float) -> None:
    """Patches `ids` as a contact sheet at `path` (whole or not at all), each captioned
    with its place, its id and its value (a score, a similarity; none: left out). Five
    columns, ten past 40 patches."""
    from eominer.ui.thumbnails import contact_sheet, patch_images, png_bytes
    from eominer.workspace import replaced_whole

    images = patch_images(store, ids.tolist(), false_colour, context=context)
    captions = [f"{k}. #{int(i)}" + ("" if values is None else f"  {values[k - 1]:.2f}")
                for k, i in enumerate(ids, 1)]
    png = png_bytes(contact_sheet(images, captions, columns=5 if len(ids) <= 40 else 10))
    try:
        with replaced_whole(path.resolve()) as scratch:
            scratch.write_bytes(png)
    except OSError as exc:
        raise click.BadParameter(f"cannot write {path}: {exc.strerror}; give a path in a "
                                 "folder you can write to", param_hint="'--sheet'") from exc
