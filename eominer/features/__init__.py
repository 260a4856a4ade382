"""Patch descriptors, registered by name with their parameters (see registry.py).

    from eominer.features import build, parse_feature_names
    d = build("spectral", ["B02", "B03", "B04", "B08"])
    X = d.compute(stack, windows)        # (n, d.dims) float32

Modules load lazily (TensorFlow only for the encoder).
"""

from __future__ import annotations

from eominer.features.registry import (
    BUILDERS,
    DEFAULT_FEATURES,
    Descriptor,
    available,
    build,
    parse_feature_names,
)

__all__ = ["BUILDERS", "DEFAULT_FEATURES", "Descriptor", "available", "build",
           "parse_feature_names"]
