"""Pairs that cannot be compared are refused with a message naming the date."""

from __future__ import annotations

import dataclasses

import pytest

from eominer.change.align import align_pair
from eominer.errors import PairingError


def test_a_date_that_is_all_cloud_is_refused_naming_it(bordeaux_pair) -> None:
    second = bordeaux_pair.second
    data = second.data.copy()
    data[...] = 6000  # bright and white in every band, cirrus band high: all cloud
    cloudy = dataclasses.replace(second, data=data, source="/data/bordeaux/imgs_2")
    with pytest.raises(PairingError, match=r"/data/bordeaux/imgs_2 is cloud over all of the "
                                           r"pair's common area"):
        align_pair(bordeaux_pair.first, cloudy)
    # without the cloud test there is nothing to refuse
    assert align_pair(bordeaux_pair.first, cloudy, mask_clouds=False).valid.all()
