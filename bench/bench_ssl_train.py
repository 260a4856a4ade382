"""Training time of the self-supervised (VICReg) encoder per 10k patches, on CPU.

    python bench/bench_ssl_train.py --threads 1
    python bench/bench_ssl_train.py --threads 2 [--bands B02,B03,B04,B08]

Real 32 px patches of B02, B03, B04, B08 (or --bands; OSCD bordeaux and nantes,
imgs_1, on the 10 m grid as `eominer change` reads them, windows at a 16 px stride).
One epoch of VICReg (two augmented views per patch, `batch` per step) is timed after a
warm-up that traces the step; the bound from the same run is one epoch of the
autoencoder (`eominer encoder train`'s default method) on the same patches and batches:
the figure is printed as seconds per 10k patches and as a ratio to it.
Augmentation (numpy, in the training process) is timed on its own.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def shared_data() -> Path:
    return Path(os.environ.get("EOMINER_SHARED_DATA", ROOT.parent / "shared" / "data"))


def patches(n: int, bands: tuple[str, ...]) -> np.ndarray:
    import numpy as np

    from eominer.change.align import reflectance, scene_from_path

    out = []
    for city in ("bordeaux", "nantes"):
        scene = scene_from_path(shared_data() / f"oscd/images/{city}/imgs_1")
        img = np.moveaxis(reflectance(scene, bands), 0, -1)
        out += [img[y:y + 32, x:x + 32] for y in range(0, img.shape[0] - 31, 16)
                for x in range(0, img.shape[1] - 31, 16)]
    x = np.stack(out)
    return x[np.random.default_rng(0).choice(len(x), min(n, len(x)), replace=False)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="TensorFlow intra-op threads")
    ap.add_argument("--patches", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--bands", default="B02,B03,B04,B08",
                    help="comma-separated, e.g. the ten of `mosaiks`")
    args = ap.parse_args()

    import numpy as np

    from eominer.tfimport import import_tensorflow

    tf = import_tensorflow("the benchmark")
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from eominer.features.encoder import autoencoder, standardise
    from eominer.features.ssl import augment, fit_vicreg

    bands = tuple(args.bands.split(","))
    x = patches(args.patches, bands)
    n = len(x)
    mean, std = x.mean(axis=(0, 1, 2)), x.std(axis=(0, 1, 2))
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for i in range(0, n, args.batch):
        augment(x[i:i + args.batch], rng)
        augment(x[i:i + args.batch], rng)
    aug = time.perf_counter() - t

    # warm-up (traces the step), then one timed epoch; fit_vicreg builds a new model and
    # step per call, so the timed call's own tracing is measured apart by a 1-batch call
    t = time.perf_counter()
    fit_vicreg(x[:args.batch * 2], mean, std, epochs=1, batch_size=args.batch)
    small = time.perf_counter() - t
    t = time.perf_counter()
    fit_vicreg(x, mean, std, epochs=2, batch_size=args.batch)
    two = time.perf_counter() - t
    ssl_epoch = two - small  # (trace + 2 epochs) - (trace + 2 batches)
    ssl_epoch = ssl_epoch / (2 - 2 * args.batch / n)

    z = standardise(x, mean, std)
    model = autoencoder(len(bands), 32, 0)
    model.fit(z[:args.batch], z[:args.batch], epochs=1, batch_size=args.batch, verbose=0)
    t = time.perf_counter()
    model.fit(z, z, epochs=1, batch_size=args.batch, shuffle=True, verbose=0)
    ae_epoch = time.perf_counter() - t

    per = 10000 / n
    print(f"{n} patches of {len(bands)} bands, batch {args.batch}, {args.threads} TF "
          "thread(s), load "
          f"{os.getloadavg()[0]:.1f}")
    print(f"ssl (VICReg, 2 views): {ssl_epoch * per:7.1f} s per 10k patches per epoch "
          f"(augmentation {aug * per:.1f} s of it)")
    print(f"autoencoder (bound) : {ae_epoch * per:7.1f} s per 10k patches per epoch")
    print(f"ratio ssl / autoencoder: {ssl_epoch / ae_epoch:.2f}")


if __name__ == "__main__":
    main()
