"""The pixels of many patch windows at once, for descriptors that reduce each window.

`window_cells(stack, windows)` groups windows by (height, width) and, per group, returns
the pixels as one (k, bands, height * width) array: windows on a regular grid (offsets
multiples of the size) take one reshape of the stack, others one fancy-index gather.
Either way every window's pixels are contiguous and in row-major order, so a reduction
over the last axis is one vectorised numpy call (no per-patch Python loop).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def grid_windows(shape: tuple[int, int], size: int) -> np.ndarray:
    """(n, 4) windows of the whole size x size patches of a (rows, cols) image, row-major."""
    nr, nc = shape[0] // size, shape[1] // size
    r, c = np.divmod(np.arange(nr * nc), nc)
    return np.stack([r * size, c * size, np.full_like(r, size), np.full_like(r, size)], 1)


def _on_grid(w: np.ndarray, h: int, wd: int, shape: tuple[int, int]) -> bool:
    return bool(np.all(w[:, 0] % h == 0) and np.all(w[:, 1] % wd == 0)
                and np.all(w[:, 0] + h <= shape[0]) and np.all(w[:, 1] + wd <= shape[1]))


def window_cells(stack: np.ndarray, windows: np.ndarray,
                 ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(row indexes into `windows`, (k, bands, h * w) pixels) per distinct window size."""
    windows = np.asarray(windows, np.int64).reshape(-1, 4)
    if not len(windows):
        return
    b = stack.shape[0]
    sizes = np.unique(windows[:, 2:4], axis=0)
    for h, wd in sizes.tolist():
        idx = np.flatnonzero((windows[:, 2] == h) & (windows[:, 3] == wd))
        w = windows[idx]
        if _on_grid(w, h, wd, stack.shape[1:]):
            nr, nc = stack.shape[1] // h, stack.shape[2] // wd
            v = stack[:, : nr * h, : nc * wd].reshape(b, nr, h, nc, wd)
            cells = v.transpose(1, 3, 0, 2, 4).reshape(nr * nc, b, h * wd)
            pick = (w[:, 0] // h) * nc + w[:, 1] // wd
            if not np.array_equal(pick, np.arange(nr * nc)):
                cells = cells[pick]
        else:
            rows = w[:, 0, None] + np.arange(h)            # (k, h)
            cols = w[:, 1, None] + np.arange(wd)           # (k, w)
            g = stack[:, rows[:, :, None], cols[:, None, :]]  # (b, k, h, w)
            cells = g.transpose(1, 0, 2, 3).reshape(len(w), b, h * wd)
        yield idx, cells


def chunks(n: int, bands: int, pixels: int, nbytes: int = 2 << 20) -> list[slice]:
    """Slices of n windows whose float64 pixels fit in about `nbytes` (cache-sized
    pieces: reductions over a few MB run at cache speed, over the whole batch at memory
    speed)."""
    step = max(1, nbytes // max(1, bands * pixels * 8))
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


def tile_patches(patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, bands, h, w) patches -> a (bands, h, n * w) stack with the patches side by side
    and their (n, 4) windows: how a batch of separate patches goes through a Descriptor."""
    n, b, h, w = patches.shape
    stack = np.ascontiguousarray(patches.transpose(1, 2, 0, 3)).reshape(b, h, n * w)
    i = np.arange(n)
    windows = np.stack([np.zeros_like(i), i * w, np.full_like(i, h), np.full_like(i, w)], 1)
    return stack, windows
