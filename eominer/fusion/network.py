"""A small two-branch Keras network for multi-label land cover from S1 + S2 patches.

    S2 (n, n, 12) -> conv 3x3/2 (8) -> conv 3x3/2 (16) -> global mean ─┐ x s2_ok
    S1 (n, n, 2)  -> conv 3x3/2 (8) -> conv 3x3/2 (16) -> global mean ─┼──> dense 32 -> sigmoid "fused"
    s2_ok (1)  ────────────────────────────────────────────────────────┘
                                      S1 features -> sigmoid "s1" (auxiliary head)

Two outputs, both trained (binary cross-entropy): "fused" and an S1-only head. During
training the S2 input of a random 30% of patches is blanked and its `s2_ok` set to 0
(modality dropout), so the fused head also learns to do without optics. At prediction, a
patch whose S2 is not usable (eominer.fusion.cloud) gets the S1 head's scores: cloud
reflectance never reaches the output. Inputs are scaled in `prepare` (reflectance x 3,
(dB + 15) / 6), so the weights see values of order one.

Saved as `<name>.keras` with `<name>.json` beside it (vocabulary, patch size, bands,
training metadata); `load` refuses a model without its sidecar.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eominer.errors import FeatureError, GridMismatchError, ModelNotTrainedError
from eominer.fusion.bands import S2_FUSION_BANDS
from eominer.fusion.labels import Vocabulary
from eominer.fusion.sar import require_db
from eominer.tfimport import import_tensorflow

if TYPE_CHECKING:
    from types import ModuleType

    from keras import KerasTensor, Model

KIND = "fusion_net"
VERSION = 1


def _keras() -> ModuleType:
    tf = import_tensorflow("the S1/S2 fusion network")
    try:  # one thread: on these machines processes beat threads (compute/runtime.py)
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TF already initialised in this process: keep its setting
        pass
    import keras

    return keras


def prepare(s2: np.ndarray, s1_db: np.ndarray, size: int | None = None,
            ) -> tuple[np.ndarray, np.ndarray]:
    """(n, 12, r, c) reflectance and (n, 2, r, c) dB -> channels-last, scaled, NaN-free."""
    s2, s1_db = np.asarray(s2, np.float32), np.asarray(s1_db, np.float32)
    if s2.ndim != 4 or s2.shape[1] != len(S2_FUSION_BANDS):
        raise FeatureError(
            f"S2 batch must be (n, {len(S2_FUSION_BANDS)}, rows, cols) with bands "
            f"{list(S2_FUSION_BANDS)}, got shape {s2.shape}"
        )
    if s1_db.ndim != 4 or s1_db.shape[1] != 2:
        raise FeatureError(f"S1 batch must be (n, 2 (VV, VH), rows, cols), got {s1_db.shape}")
    if s2.shape[0] != s1_db.shape[0] or s2.shape[2:] != s1_db.shape[2:]:
        raise GridMismatchError(
            f"S2 batch {s2.shape} and S1 batch {s1_db.shape} differ in patches or size: "
            "each S2 patch needs its co-located S1 patch on the same grid"
        )
    if size is not None and s2.shape[2:] != (size, size):
        raise GridMismatchError(
            f"the fusion model was trained on {size}x{size} px patches, got "
            f"{s2.shape[2]}x{s2.shape[3]} px: classify at the grid level of that size "
            f"(--level {size}) or train a model for this size"
        )
    require_db(s1_db[np.isfinite(s1_db)], "S1 batch")
    a = np.nan_to_num(np.transpose(s2, (0, 2, 3, 1)) * 3.0, nan=0.0)
    b = np.nan_to_num((np.transpose(s1_db, (0, 2, 3, 1)) + 15.0) / 6.0, nan=0.0)
    return a.astype(np.float32), b.astype(np.float32)


def build(n_labels: int, size: int, seed: int = 0) -> Model:
    keras = _keras()
    from keras import layers

    keras.utils.set_random_seed(seed)

    def branch(x: KerasTensor, name: str) -> KerasTensor:
        x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu",
                          name=f"{name}_conv1")(x)
        x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu",
                          name=f"{name}_conv2")(x)
        return layers.GlobalAveragePooling2D(name=f"{name}_pool")(x)

    s2_in = keras.Input((size, size, len(S2_FUSION_BANDS)), name="s2")
    s1_in = keras.Input((size, size, 2), name="s1")
    ok = keras.Input((1,), name="s2_ok")
    f2 = layers.Multiply(name="s2_gate")([branch(s2_in, "s2"), ok])
    f1 = branch(s1_in, "s1")
    h = layers.Concatenate(name="fuse")([f2, f1, ok])
    h = layers.Dense(32, activation="relu", name="head")(h)
    fused = layers.Dense(n_labels, activation="sigmoid", name="fused")(h)
    s1_only = layers.Dense(n_labels, activation="sigmoid", name="s1_out")(f1)
    model = keras.Model([s2_in, s1_in, ok], [fused, s1_only], name="eominer_fusion_net")
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss={"fused": "binary_crossentropy", "s1_out": "binary_crossentropy"})
    return model


class TwoBranchNet:
    """Fit/predict wrapper with the vocabulary and patch size it was trained for."""

    def __init__(self, vocabulary: Vocabulary, epochs: int = 30, batch_size: int = 8,
                 modality_dropout: float = 0.3, seed: int = 0) -> None:
        self.vocabulary = vocabulary
        self.epochs = epochs
        self.batch_size = batch_size
        self.modality_dropout = modality_dropout
        self.seed = seed

    def fit(self, s2: np.ndarray, s1_db: np.ndarray, Y: np.ndarray,
            log: Callable[[str], None] | None = None) -> TwoBranchNet:
        """Train; `log` gets a line per epoch ("epoch 3/30: loss 0.5213", the mean of the
        epoch's batches)."""
        a, b = prepare(s2, s1_db)
        Y = np.asarray(Y, np.float32)
        if Y.shape != (a.shape[0], len(self.vocabulary)):
            raise FeatureError(
                f"labels have shape {Y.shape}, expected ({a.shape[0]}, {len(self.vocabulary)}) "
                "for this vocabulary"
            )
        self.size_ = int(a.shape[1])
        self.model_ = build(len(self.vocabulary), self.size_, self.seed)
        rng = np.random.default_rng(self.seed)
        # modality dropout: a fresh draw per epoch, so every patch is seen both ways
        # (train_on_batch: Model.fit's per-call set-up costs more than an epoch of 27 patches)
        for epoch in range(self.epochs):
            drop = rng.random(a.shape[0]) < self.modality_dropout
            order = rng.permutation(a.shape[0])
            losses = []
            for start in range(0, len(order), self.batch_size):
                i = order[start:start + self.batch_size]
                a_b = np.where(drop[i, None, None, None], 0.0, a[i]).astype(np.float32)
                ok = (~drop[i]).astype(np.float32)[:, None]
                out = self.model_.train_on_batch({"s2": a_b, "s1": b[i], "s2_ok": ok},
                                                 {"fused": Y[i], "s1_out": Y[i]})
                losses.append(float(np.ravel(out)[0]))  # the total loss comes first
            if log:
                log(f"epoch {epoch + 1}/{self.epochs}: loss {np.mean(losses):.4f}")
        return self

    def predict_proba(self, s2: np.ndarray, s1_db: np.ndarray,
                      s2_usable: np.ndarray | None = None,
                      vocabulary: Vocabulary | None = None) -> np.ndarray:
        """(n, n_labels) scores; rows with unusable S2 get the S1 head's scores."""
        if not hasattr(self, "model_"):
            raise ModelNotTrainedError("the fusion network is not trained: "
                                       "run `eominer fusion train` first")
        if vocabulary is not None:
            self.vocabulary.require_same(vocabulary, "fusion network")
        a, b = prepare(s2, s1_db, self.size_)
        u = np.ones(a.shape[0], bool) if s2_usable is None else np.asarray(s2_usable, bool)
        if u.shape != (a.shape[0],):
            raise FeatureError(f"s2_usable must have one flag per patch ({a.shape[0]})")
        a = np.where(u[:, None, None, None], a, 0.0).astype(np.float32)
        fused, s1_only = self.model_.predict(
            {"s2": a, "s1": b, "s2_ok": u.astype(np.float32)[:, None]}, verbose=0,
            batch_size=64)
        return np.where(u[:, None], fused, s1_only).astype(np.float32)

    # ---- persistence --------------------------------------------------------------
    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        path = Path(path).with_suffix(".keras")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.model_.save(path)
        meta = {"kind": KIND, "version": VERSION, "vocabulary": list(self.vocabulary.names),
                "patch_size": self.size_, "s2_bands": list(S2_FUSION_BANDS),
                "s1_bands": ["VV", "VH"], "s1_scale": "db", "epochs": self.epochs,
                "modality_dropout": self.modality_dropout, "seed": self.seed, **(extra or {})}
        path.with_suffix(".json").write_text(json.dumps(meta, indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> TwoBranchNet:
        path = Path(path).with_suffix(".keras")
        sidecar = path.with_suffix(".json")
        if not path.exists() or not sidecar.exists():
            raise ModelNotTrainedError(
                f"fusion model {path} (with its vocabulary {sidecar.name}) not found: "
                "train one with `eominer fusion train`"
            )
        meta = json.loads(sidecar.read_text())
        if meta.get("kind") != KIND or meta.get("s2_bands") != list(S2_FUSION_BANDS):
            raise FeatureError(f"{sidecar} is not an eominer fusion network of this version "
                               f"(kind {meta.get('kind')!r}, bands {meta.get('s2_bands')})")
        keras = _keras()
        net = cls(Vocabulary(tuple(meta["vocabulary"])), meta["epochs"], 8,
                  meta["modality_dropout"], meta["seed"])
        net.model_ = keras.models.load_model(path)
        net.size_ = int(meta["patch_size"])
        net.meta_ = meta
        return net


def stack_patches(patches: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """PairedPatch objects -> (n, 12, r, c) S2 and (n, 2, r, c) S1 arrays."""
    return np.stack([p.s2 for p in patches]), np.stack([p.s1 for p in patches])
