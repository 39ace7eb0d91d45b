"""The sub-bit schedule's work split: even per core, and responses recomputed as little as possible."""

import pytest
from test_schedules.subbit_strategies import make_conv
from tir_helpers import masked_offset_loads

from schedules import kernels
from schedules.knobs import ITEMS_PER_CORE
from schedules.knobs import MAX_CHANNEL_SPLITS as MAX_SPLITS
from schedules.subbit import KERNEL_3X3
from schedules.subbit_plan import channel_splits


@pytest.mark.parametrize(
    ("tiles", "channels", "cores", "splits"),
    [
        (1, 512, 2, 2),  # one tile: two halves of the channels
        (4, 256, 2, 1),  # two tiles per core already
        (3, 64, 2, 2),  # 3 tiles cannot go evenly on 2 cores: 6 items
        (14, 256, 2, 1),
        (1, 512, 1, 1),  # one core: never split
        (1, 512, 4, 4),
        (1, 512, 16, MAX_SPLITS),  # at most MAX_SPLITS parts
        (1, 6, 4, 2),  # only powers of two that divide the channels
        (5, 64, 3, 4),  # 5 or 10 items on 3 cores are uneven; 20 are enough to even out
    ],
)
def testchannel_splits(tiles, channels, cores, splits):
    assert channel_splits(tiles, channels, cores) == splits


@pytest.mark.parametrize("tiles", range(1, 20))
@pytest.mark.parametrize("cores", [1, 2, 3, 4])
def test_channel_splits_give_even_or_many_items(tiles, cores):
    splits = channel_splits(tiles, 64, cores)
    items = tiles * splits
    assert 64 % splits == 0 and splits <= MAX_SPLITS
    assert items % cores == 0 or items >= ITEMS_PER_CORE * cores or splits == MAX_SPLITS


@pytest.mark.parametrize("activation", ["float", "binary"])
def test_schedule_drops_the_offset_mask_it_needed(activation):
    """The gather's ``offset & mask`` bounds the schedule's analysis only; the scheduled kernel reads the offset as is."""
    conv = make_conv(KERNEL_3X3, 5, 16, 8, seed=0, activation=activation, padding=1)
    shape = (1, 16, 8, 8)
    assert len(masked_offset_loads(kernels.build(conv, shape, kernels.select_plan(conv, shape)).func)) == 1
    assert masked_offset_loads(kernels.build_scheduled(conv, shape).func) == []
