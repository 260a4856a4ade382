"""Sentinel-1 / Sentinel-2 fusion for land-cover classification (docs/fusion.md).

- `bigearthnet`: readers for BigEarthNet v1 GeoTIFF folders and the v2 LMDB distribution;
- `labels`: the 19-class nomenclature, CORINE-43 mapping, vocabularies;
- `sar`: dB vs. linear power, S1 resampling onto an S2 grid;
- `pairing`: S2/S1 product pairs (same place, time window), recorded in the database;
- `features`, `featureset`: per-sensor descriptors, feature-level fusion, fused feature sets;
- `models`, `decision`: multi-label classifiers, feature- and decision-level fusion;
- `cloud`: when the optical patch is unusable (fusion then falls back on S1);
- `network`, `jobs`: the two-branch Keras network, trained on Ray, applied to paired patches;
- `evaluation`: cross-validated comparison behind `eominer eval fusion`.
"""
