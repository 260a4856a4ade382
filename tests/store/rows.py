"""Rows for the store tests, written through the store API. Importable in the Python 3.10
monetdbe side environment: only eominer.store, numpy and pyarrow."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from eominer.store.records import (
    Product,
    RoundRecord,
    SessionParams,
    SessionRecord,
)

T0 = dt.datetime(2024, 5, 1, 10, 30, 0)


def add_product(store, product_id: str, acquired: dt.datetime | None, first: int,
                levels=(32, 64), n: int = 4) -> list[int]:
    """A product with `n` patches per level (ids from `first`, or after the highest id
    when those are taken), through the store API; returns its patch ids."""
    product = Product(
        product_id=product_id, sensor="S2", platform="S2A", processing_level="L1C",
        tile_id="T30TXQ", acquired=acquired, crs="EPSG:32630",
        footprint_wkt="POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))", source_path=f"/src/{product_id}",
        ard_path=f"/ard/{product_id}.tif", width=128, height=128, bands=("B04", "B08"),
        transform=(10.0, 0.0, 0.0, 0.0, -10.0, 0.0), source_hash="h" + product_id,
    )
    rows = []
    pid = first
    for k, lv in enumerate(levels):
        for i in range(n):
            rows.append({
                "patch_id": pid, "product_id": product_id, "level": lv, "size_px": lv,
                "row": i // 2, "col": i % 2, "x_off": (i % 2) * lv, "y_off": (i // 2) * lv,
                "min_x": float(i), "min_y": float(i) + 0.5, "max_x": float(i) + 1.0,
                "max_y": float(i) + 1.5, "min_lon": -1.0 + i * 0.01, "min_lat": 44.0,
                "max_lon": -0.99 + i * 0.01, "max_lat": 44.01,
                "valid_fraction": 1.0 - 0.25 * (i % 2),
                "cloud_fraction": None if i == 0 else 0.1 * i,
                "parent_id": None if k == len(levels) - 1 else first + (k + 1) * n + i // 4,
            })
            pid += 1
    schema = pa.schema([
        ("patch_id", pa.int64()), ("product_id", pa.string()), ("level", pa.int32()),
        ("size_px", pa.int32()), ("row", pa.int32()), ("col", pa.int32()),
        ("x_off", pa.int32()), ("y_off", pa.int32()), ("min_x", pa.float64()),
        ("min_y", pa.float64()), ("max_x", pa.float64()), ("max_y", pa.float64()),
        ("min_lon", pa.float64()), ("min_lat", pa.float64()), ("max_lon", pa.float64()),
        ("max_lat", pa.float64()), ("valid_fraction", pa.float32()),
        ("cloud_fraction", pa.float32()), ("parent_id", pa.int64()),
    ])
    stored = store.add_product(product, pa.Table.from_pylist(rows, schema=schema))
    return stored["patch_id"].to_pylist()


def as_datetime(value) -> dt.datetime:
    """A timestamp cell as a naive datetime, whatever Arrow unit the engine returned."""
    if isinstance(value, np.datetime64):
        value = value.astype("datetime64[us]").item()
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    assert isinstance(value, dt.datetime), type(value)
    return value.replace(tzinfo=None)


def ms(value: dt.datetime) -> dt.datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def session_record(sid: str, owner: str, created: dt.datetime, **extra) -> SessionRecord:
    values = {
        "session_id": sid, "name": f"find {sid}", "owner": owner, "concept": "lake",
        "level": 32, "product_ids": ("P1",), "feature_set_ids": ("fsA",),
        "feature_signature": "sig1", "model_kind": "logistic", "strategy": "diverse",
        "params": SessionParams(seed=3, model_params={"C": 0.5}), "status": "open",
        "created": created, "updated": created,
    }
    values.update(extra)
    return SessionRecord(**values)


def round_record(sid: str, number: int, created: dt.datetime, **extra) -> RoundRecord:
    values = {
        "session_id": sid, "round": number, "model_kind": "logistic", "strategy": "diverse",
        "n_labels": 4 * number, "n_positive": number, "n_negative": 3 * number,
        "seconds": 0.125 * number, "created": created, "queried": (1, 2, 3),
        "fitted": True, "seed": 7, "n": 8, "model_params": {"C": 1.0},
        "quality": {"flip_rate": None, "advice": "label more"}, "notes": ("a note",),
        "labels": ((1, 1), (2, -1)),
    }
    values.update(extra)
    return RoundRecord(**values)


def patch_rows(n: int, first: int = 1, product: str = "P1") -> pa.Table:
    rng = np.random.default_rng(0)
    ids = np.arange(first, first + n, dtype=np.int64)
    f64 = rng.random(n)
    i32 = (ids % 1000).astype(np.int32)
    return pa.table({
        "patch_id": ids, "product_id": pa.array([product] * n), "level": np.full(n, 32, np.int32),
        "size_px": np.full(n, 32, np.int32), "row": i32, "col": i32, "x_off": i32 * 32,
        "y_off": i32 * 32, "min_x": f64, "min_y": f64, "max_x": f64 + 1, "max_y": f64 + 1,
        "min_lon": f64, "min_lat": f64, "max_lon": f64 + 0.1, "max_lat": f64 + 0.1,
        "valid_fraction": np.ones(n, np.float32),
    })
