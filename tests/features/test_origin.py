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


def test_the_sets_one_change_run_writes_get_one_command() -> None:
    """A second date lacks a model's archive change set, `diff_tails` and the features
    of both dates: one `eominer change` run writes all three, so one command is named
    (three, each with its own flags, sent the analyst round three times)."""
    from eominer.features.origin import change_advice

    sets = [_fs("archive_change_selftrain_regression", method="selftrain_regression"),
            _fs("archive_diff_tails"), _fs("dates_spectral", source="spectral_v1_0"),
            _fs("dates_gabor", source="gabor_v1_0")]
    assert "run `eominer change P2 AFTER --method selftrain_regression --features " \
        "spectral,gabor` first, AFTER a later date of the same place on the same grid" \
        in change_advice(sets, ["P2"])
    assert "run `eominer change P2 AFTER` first, AFTER a later date of the same place, " \
        in change_advice(sets[1:2], ["P2"])
    # what one run cannot write: each set keeps its own advice
    assert change_advice([*sets, _fs("spectral")], ["P2"]) is None
    assert change_advice([*sets, _fs("archive_change_cva", method="cva")], ["P2"]) is None
