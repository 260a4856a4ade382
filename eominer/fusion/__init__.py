"""Sentinel-1 / Sentinel-2 fusion for land-cover classification (docs/fusion.md).

- `bands`: the S2/S1 bands the fusion models take;
- `labels`: the 19-class nomenclature, CORINE-43 mapping, vocabularies;
- `sar`: dB vs. linear power, S1 resampling onto an S2 grid;
- `pairing`: S2/S1 product pairs (same place, time window), recorded in the database;
- `features`, `featureset`: per-sensor descriptors, feature-level fusion, fused feature sets;
- `models`, `decision`: multi-label classifiers, feature- and decision-level fusion;
- `cloud`: when the optical patch is unusable (fusion then falls back on S1);
- `network`, `classify`: the two-branch Keras network and its application to paired patches
  (trained by the `fusion train` runner job, compute/fusion.py).

The BigEarthNet readers and the cross-validated comparison behind `eominer eval fusion`
live in `eominer.evaluation`.
"""
