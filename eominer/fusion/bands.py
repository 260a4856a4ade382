"""The bands S1/S2 fusion works on, in stack order (see eominer.sensors for the facts)."""

from __future__ import annotations

from eominer import sensors as S

# Fusion uses L2A-like S2 stacks (BigEarthNet is L2A): the 12 bands without the cirrus
# band B10, in ESA order; S1 is VV, VH in dB.
S2_FUSION_BANDS: tuple[str, ...] = S.S2_L2A_BANDS
S1_FUSION_BANDS: tuple[str, ...] = S.S1_BANDS
