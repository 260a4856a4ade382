"""Typed records the store reads and writes: products, patch windows, sessions, rounds
and labels. Frozen dataclasses that check themselves; the JSON of the VARCHAR columns
(`products.bands`, `sessions.params`, `rounds.queried`, ...) is parsed and written here
and nowhere else, so the rest of eominer sees tuples, numbers and datetimes.

Importable on Python 3.10 (the monetdbe side environment).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

SESSION_STATUSES = ("open", "closed", "published", "archived")
LABEL_PURPOSES = ("train", "verify")


def dumps(value: Any) -> str:
    """JSON for the VARCHAR parameter columns (sorted keys: stable text)."""
    return json.dumps(value, sort_keys=True, default=str)


def _loads(text: str | None, what: str) -> Any:
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what}: expected JSON, got {text[:80]!r} ({exc})") from exc


def _float_or_none(value: Any) -> float | None:
    """A nullable DOUBLE as read back (MonetDB gives NaN for NULL)."""
    return None if value is None or value != value else float(value)


def naive_datetime(value: Any) -> dt.datetime | None:
    """A TIMESTAMP cell (datetime, numpy or pandas timestamp, ISO text) as naive UTC."""
    if value is None or (isinstance(value, str) and not value):
        return None
    if isinstance(value, np.datetime64):
        value = value.astype("datetime64[us]").item()
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        raise ValueError(f"expected a timestamp, got {value!r}")
    return value.replace(tzinfo=None)


# ---- products ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Product:
    """An ingested product (a row of `products`): its analysis-ready COG and its grid."""

    product_id: str
    sensor: str
    crs: str  # WKT (or an EPSG code) of the 10 m grid
    footprint_wkt: str  # WGS84
    source_path: str
    ard_path: str
    width: int
    height: int
    bands: tuple[str, ...]  # band names, in the order of the COG's bands
    transform: tuple[float, float, float, float, float, float]  # affine a, b, c, d, e, f
    source_hash: str = ""
    platform: str | None = None
    processing_level: str | None = None
    tile_id: str | None = None
    acquired: dt.datetime | None = None
    ingested: dt.datetime | None = None
    n_patches: int | None = None  # patches of every level (set when read from the store)
    # Sentinel-2 product metadata (MTD_MSIL*.xml; schema version 2), None when unknown
    processing_baseline: str | None = None  # "05.09"
    cloud_cover: float | None = None  # percent of the product (Cloud_Coverage_Assessment)
    relative_orbit: int | None = None
    orbit_direction: str | None = None  # "ASCENDING" / "DESCENDING"
    reflectance_offsets: Mapping[str, float] | None = None  # band -> add-offset applied (DN)
    quantification: float | None = None  # DN per unit reflectance of the source (10000)
    # schema version 3: the mask the patches' cloud fractions come from ('SCL',
    # 'MSK_CLASSI', 'MSK_CLOUDS_GML', 's2cloudless'; None: none), solar angles (degrees)
    cloud_mask: str | None = None
    sun_zenith: float | None = None
    sun_azimuth: float | None = None

    def __post_init__(self) -> None:
        if not self.product_id or not self.sensor:
            raise ValueError(f"a product needs an id and a sensor, got {self.product_id!r}, "
                             f"{self.sensor!r}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"product {self.product_id}: width and height must be positive, "
                             f"got {self.width} x {self.height}")
        if not self.bands:
            raise ValueError(f"product {self.product_id} has no bands")
        if len(self.transform) != 6:
            raise ValueError(f"product {self.product_id}: transform must have 6 numbers "
                             f"(a, b, c, d, e, f), got {len(self.transform)}")

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """left, bottom, right, top in the product's CRS."""
        a, _, c, _, e, f = self.transform
        right, bottom = c + self.width * a, f + self.height * e
        return c, min(f, bottom), right, max(f, bottom)

    def band_index(self, name: str) -> int:
        """1-based index of band `name` in the COG."""
        if name not in self.bands:
            raise KeyError(f"band {name} missing in product {self.product_id}: expected one "
                           f"of {', '.join(self.bands)}")
        return self.bands.index(name) + 1

    @classmethod
    def create(cls, *, bands: Sequence[str], transform: Sequence[float],
               **values: Any) -> Product:
        """A product from plain values (`transform` may be a 9-number Affine)."""
        return cls(bands=tuple(str(b) for b in bands),
                   transform=tuple(float(v) for v in list(transform)[:6]),  # type: ignore[arg-type]
                   **values)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Product:
        """A product from a `products` row (JSON columns as stored)."""
        bands = row["bands"]
        if isinstance(bands, str):
            bands = _loads(bands, f"bands of product {row['product_id']}")
        t = row["transform"]
        if isinstance(t, str):
            t = _loads(t, f"transform of product {row['product_id']}")
        if isinstance(t, Mapping):
            t = [t[k] for k in ("a", "b", "c", "d", "e", "f")]
        n = row.get("patches")
        return cls.create(
            product_id=row["product_id"], sensor=row["sensor"], crs=row["crs"],
            footprint_wkt=row["footprint_wkt"], source_path=row["source_path"],
            ard_path=row["ard_path"], width=int(row["width"]), height=int(row["height"]),
            bands=bands, transform=t, source_hash=row.get("source_hash") or "",
            platform=row.get("platform"), processing_level=row.get("processing_level"),
            tile_id=row.get("tile_id"), acquired=naive_datetime(row.get("acquired")),
            ingested=naive_datetime(row.get("ingested")), n_patches=None if n is None else int(n),
            processing_baseline=row.get("processing_baseline"),
            cloud_cover=_float_or_none(row.get("cloud_cover")),
            relative_orbit=None if row.get("relative_orbit") is None
            else int(row["relative_orbit"]),
            orbit_direction=row.get("orbit_direction"),
            reflectance_offsets=_loads(row.get("reflectance_offsets"),
                                       f"reflectance_offsets of product {row['product_id']}"),
            quantification=_float_or_none(row.get("quantification")),
            cloud_mask=row.get("cloud_mask"),
            sun_zenith=_float_or_none(row.get("sun_zenith")),
            sun_azimuth=_float_or_none(row.get("sun_azimuth")),
        )

    def to_row(self) -> dict[str, Any]:
        """The `products` row (without `ingested`, which the store sets)."""
        row = {f.name: getattr(self, f.name) for f in fields(self)
               if f.name not in ("ingested", "n_patches")}
        row["bands"] = json.dumps(list(self.bands))
        row["transform"] = json.dumps(list(self.transform))
        row["reflectance_offsets"] = None if self.reflectance_offsets is None \
            else dumps({k: float(v) for k, v in self.reflectance_offsets.items()})
        return row


@dataclass(frozen=True)
class PatchWindow:
    """Where a patch sits in its product's COG: a square pixel window."""

    patch_id: int
    product_id: str
    x_off: int
    y_off: int
    size_px: int

    def __post_init__(self) -> None:
        if self.x_off < 0 or self.y_off < 0 or self.size_px <= 0:
            raise ValueError(
                f"patch {self.patch_id} of {self.product_id}: expected offsets >= 0 and a "
                f"positive size, got x_off={self.x_off}, y_off={self.y_off}, "
                f"size_px={self.size_px}")

    @property
    def square(self) -> tuple[int, int, int]:
        """(x_off, y_off, size_px)."""
        return self.x_off, self.y_off, self.size_px


# ---- sessions ---------------------------------------------------------------------------
# above, a patch's rank is mostly its neighbours' and the smoothing converges slowly
SPATIAL_CONTEXT_MAX = 0.9
# questions in one round at most: an analyst answers tens per round, and a batch is
# drawn as thumbnails in the app; a larger selection is labelled in bulk (label_many)
BATCH_MAX = 1000


@dataclass(frozen=True)
class SessionParams:
    """The tunable parameters of a session (`sessions.params`)."""

    batch_size: int = 20
    seed: int = 0
    # how far `diverse` spreads a batch on the map (patch centres beside the features);
    # 0: by features only (docs/learning.md, "Spreading a batch on the map")
    spatial_weight: float = 0.0
    # rank by scores mixed with the touching patches' (learning/context.py); 0: off
    spatial_context: float = 0.0
    model_params: Mapping[str, Any] = field(default_factory=dict)
    publish_threshold: float = 0.5
    parent_session: str | None = None  # cascade: the coarser session this one refines
    # scope: leave out patches whose cloud_fraction is above this (NULL, unknown, stays in)
    max_cloud: float | None = None
    shared: bool = False  # visible to the team (else to its owner only)
    # scope: an area of interest (WKT, EPSG:4326) that the patches' WGS84 boxes intersect,
    # and a WHERE over the view scope_rows (docs/schema.md), run on the read-only path
    aoi_wkt: str | None = None
    where: str | None = None
    # rank with a feature column as a prior that the labels take over (learning/prior.py):
    # the column ("set__name" or a name unique in the session), its weight in logit units
    # at zero labels and the labels at which the weight has halved (0: it never fades)
    prior: str | None = None
    prior_weight: float = 4.0
    prior_half: float = 20.0

    def __post_init__(self) -> None:
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.max_cloud is not None and not 0.0 <= float(self.max_cloud) <= 1.0:
            raise ValueError(f"max_cloud must be a fraction in [0, 1], got {self.max_cloud}")
        if not 0.0 <= float(self.spatial_context) <= SPATIAL_CONTEXT_MAX:
            raise ValueError(f"spatial_context must be in [0, {SPATIAL_CONTEXT_MAX}] (0: off; "
                             f"0.3 is the measured choice), got {self.spatial_context}")
        if not (math.isfinite(float(self.spatial_weight)) and float(self.spatial_weight) >= 0):
            raise ValueError(f"spatial_weight must be a finite number of at least 0 (0: the "
                             f"batch by features only; 1 spreads it on the map as much), "
                             f"got {self.spatial_weight}")
        if not (math.isfinite(float(self.prior_weight)) and float(self.prior_half) >= 0.0):
            raise ValueError(f"prior_weight must be a finite number and prior_half at least 0 "
                             f"(0: never fades), got {self.prior_weight} and {self.prior_half}")
        if not 0.0 <= float(self.publish_threshold) <= 1.0:
            raise ValueError(
                f"publish_threshold must be in [0, 1], got {self.publish_threshold}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> SessionParams:
        """Parameters from a mapping; unknown names are refused (a typo would be ignored)."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        bad = sorted(set(values) - known)
        if bad:
            raise ValueError(f"unknown session parameter(s) {bad}: expected some of "
                             f"{sorted(known)}")
        if "model_params" in values:
            values["model_params"] = dict(values["model_params"] or {})
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model_params"] = dict(self.model_params)
        for optional in ("parent_session", "max_cloud", "aoi_wkt", "where"):
            # absent: the text stays as before
            if d[optional] is None:
                del d[optional]
        if not d["shared"]:  # the text of sessions stored before sharing existed
            del d["shared"]
        if not d["spatial_context"]:  # likewise, before spatial context
            del d["spatial_context"]
        if d["prior"] is None:  # likewise, before the prior
            for key in ("prior", "prior_weight", "prior_half"):
                del d[key]
        return d


@dataclass(frozen=True)
class SessionRecord:
    """A mining session as stored (a row of `sessions`)."""

    session_id: str
    name: str
    owner: str
    concept: str
    level: int
    product_ids: tuple[str, ...]
    feature_set_ids: tuple[str, ...]
    feature_signature: str
    model_kind: str
    strategy: str
    params: SessionParams
    status: str
    created: dt.datetime
    updated: dt.datetime

    def __post_init__(self) -> None:
        if self.status not in SESSION_STATUSES:
            raise ValueError(f"session {self.session_id}: status must be one of "
                             f"{SESSION_STATUSES}, got {self.status!r}")

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> SessionRecord:
        sid = row["session_id"]
        return cls(
            session_id=sid, name=row["name"], owner=row["owner"], concept=row["concept"],
            level=int(row["level"]),
            product_ids=tuple(_loads(row["product_ids"], f"product_ids of session {sid}")),
            feature_set_ids=tuple(_loads(row["feature_set_ids"],
                                         f"feature_set_ids of session {sid}")),
            feature_signature=row["feature_signature"], model_kind=row["model_kind"],
            strategy=row["strategy"],
            params=SessionParams.from_dict(_loads(row["params"], f"params of session {sid}")),
            status=row["status"], created=naive_datetime(row["created"]),  # type: ignore[arg-type]
            updated=naive_datetime(row["updated"]),  # type: ignore[arg-type]
        )

    def to_row(self) -> dict[str, Any]:
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        row["product_ids"] = dumps(list(self.product_ids))
        row["feature_set_ids"] = dumps(list(self.feature_set_ids))
        row["params"] = dumps(self.params.to_dict())
        return row


VERIFY_FLOATS = ("verify_threshold", "precision_low", "precision_high", "recall_estimate",
                 "recall_low", "recall_high", "positives_estimate")


@dataclass(frozen=True)
class RoundRecord:
    """One round of a session as stored (a row of `rounds`, its params unpacked)."""

    session_id: str
    round: int
    model_kind: str
    strategy: str
    n_labels: int
    n_positive: int
    n_negative: int
    seconds: float
    created: dt.datetime
    queried: tuple[int, ...] = ()
    ranking_change: float | None = None
    precision_estimate: float | None = None
    # its quality check (schema version 5; None until verified, learning/verification.py)
    verify_threshold: float | None = None
    precision_low: float | None = None
    precision_high: float | None = None
    recall_estimate: float | None = None
    recall_low: float | None = None
    recall_high: float | None = None
    verified_n: int | None = None
    positives_estimate: float | None = None
    # what the round ran with (`rounds.params`)
    fitted: bool = False
    seed: int = 0
    n: int = 0
    model_params: Mapping[str, Any] = field(default_factory=dict)
    quality: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    # the exact training set, (patch_id, label) pairs; None for rounds recorded before
    # it was stored with them
    labels: tuple[tuple[int, int], ...] | None = None

    _PARAMS = ("fitted", "seed", "n", "model_params", "quality", "notes", "labels")

    def params(self) -> dict[str, Any]:
        """The `rounds.params` mapping."""
        p: dict[str, Any] = {"model_params": dict(self.model_params), "seed": self.seed,
                             "n": self.n, "notes": list(self.notes),
                             "quality": dict(self.quality), "fitted": self.fitted}
        if self.labels is not None:
            p["labels"] = [list(pair) for pair in self.labels]
        return p

    def params_json(self) -> str:
        """`rounds.params` as stored (sorted keys: a stable text to fingerprint)."""
        return dumps(self.params())

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RoundRecord:
        p = _loads(row["params"], f"params of round {row['round']} of {row['session_id']}") \
            or {}
        labels = p.get("labels")
        return cls(
            session_id=row["session_id"], round=int(row["round"]),
            model_kind=row["model_kind"], strategy=row["strategy"],
            n_labels=int(row["n_labels"]), n_positive=int(row["n_positive"]),
            n_negative=int(row["n_negative"]), seconds=float(row["seconds"]),
            created=naive_datetime(row["created"]),  # type: ignore[arg-type]
            queried=tuple(int(i) for i in _loads(row["queried"], "rounds.queried") or ()),
            ranking_change=_float_or_none(row.get("ranking_change")),
            precision_estimate=_float_or_none(row.get("precision_estimate")),
            **{k: _float_or_none(row.get(k)) for k in VERIFY_FLOATS},
            verified_n=None if row.get("verified_n") is None else int(row["verified_n"]),
            fitted=bool(p.get("fitted", False)), seed=int(p.get("seed", 0)),
            n=int(p.get("n", 0)), model_params=dict(p.get("model_params") or {}),
            quality=dict(p.get("quality") or {}), notes=tuple(p.get("notes") or ()),
            labels=None if labels is None else tuple((int(i), int(v)) for i, v in labels),
        )

    def to_row(self) -> dict[str, Any]:
        row = {f.name: getattr(self, f.name) for f in fields(self)
               if f.name not in self._PARAMS}
        row["params"] = self.params_json()
        row["queried"] = dumps([int(i) for i in self.queried])
        return row


@dataclass(frozen=True)
class Label:
    """One answer of one user on one patch (a row of `labels`)."""

    session_id: str
    patch_id: int
    user_name: str
    label: int  # +1 yes, -1 no
    round: int
    purpose: str
    labelled_at: dt.datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any], session_id: str) -> Label:
        return cls(session_id=session_id, patch_id=int(row["patch_id"]),
                   user_name=row["user_name"], label=int(row["label"]),
                   round=int(row["round"]), purpose=row["purpose"],
                   labelled_at=naive_datetime(row["labelled_at"]))  # type: ignore[arg-type]
