"""eominer.features.origin: the command an error names for a set that products lack."""

from __future__ import annotations

import pytest

from eominer.features.origin import advice_for
from eominer.store.features import FeatureSet


def _fs(name: str, **params) -> FeatureSet:
    return FeatureSet(f"{name}_v1_0123456789", name, 1, params, ("a",), f"fs_{name}", "S2")


@pytest.mark.parametrize(("fs", "command"), [
    (_fs("spectral"), "eominer extract --features spectral --products P1,P2"),
    # `extract` refuses these names: the command that writes them is named
    (_fs("dates_spectral", source="spectral_v1_85957bc81e"),
     "eominer change P1 AFTER --features spectral"),
    (_fs("archive_change_cva", method="cva"), "eominer change P1 AFTER --method cva"),
    (_fs("nbr_spectral", of="spectral_v1_85957bc81e", reach=2),
     "eominer extract --features spectral --neighbours 2 --products P1,P2"),
    (_fs("temporal"), "eominer timeseries --tile TILE"),
])
def test_the_advice_names_the_command_that_writes_the_set(fs, command) -> None:
    advice = advice_for(fs, ["P1", "P2"])
    assert f"run `{command}" in advice
    assert "extract --features dates_" not in advice
