"""Tests of the kernel table, codes, sampling and de-duplication helpers."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tvm_snn.errors import ConfigError
from tvm_snn.schema import code_to_signs, negate_code, signs_to_code
from tvm_snn.train.subset import (
    UNIT_1X1,
    UNIT_3X3,
    all_kernels,
    derive_seed,
    duplicate_mask,
    kernel_codes,
    make_generator,
    nearest,
    sample_frequent,
    sample_missing,
    sample_random,
    unit_size,
)

from common import STATISTIC_ATOL, TRAIN_MAX_EXAMPLES


@pytest.mark.parametrize("unit", [UNIT_1X1, UNIT_3X3])
def test_table_is_all_distinct_sign_patterns_in_code_order(unit):
    table = all_kernels(unit)
    assert table.shape == (1 << unit, unit)
    assert set(table.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(kernel_codes(table), torch.arange(1 << unit))


@pytest.mark.parametrize("unit", [UNIT_1X1, UNIT_3X3])
def test_table_rows_in_the_schema_sign_code(unit):
    # Row r is the unit whose reversed elements have the schema code negate_code(r).
    rows = torch.arange(1 << unit)
    table = all_kernels(unit, dtype=torch.int8)
    assert torch.equal(signs_to_code(table.flip(-1)), negate_code(rows, unit))
    expected = code_to_signs(negate_code(rows.numpy(), unit), unit)[:, ::-1]
    np.testing.assert_array_equal(table.numpy(), expected)


def test_zero_counts_as_plus_one():
    assert kernel_codes(torch.zeros(1, UNIT_1X1)).item() == (1 << UNIT_1X1) - 1


def test_code_puts_first_element_in_the_most_significant_bit():
    signs = torch.tensor([[1.0] + [-1.0] * (UNIT_3X3 - 1)])
    assert kernel_codes(signs).item() == 1 << (UNIT_3X3 - 1)


def test_unit_size_rejects_other_kernels():
    assert unit_size((3, 3)) == UNIT_3X3
    assert unit_size((1, 1)) == UNIT_1X1
    with pytest.raises(ConfigError, match=r"\(5, 5\)"):
        unit_size((5, 5))


@settings(max_examples=TRAIN_MAX_EXAMPLES, deadline=None)
@given(seed=st.integers(0, 2**31), tau=st.integers(1, UNIT_3X3 - 1))
def test_random_sampling_is_seeded_distinct_and_sized(seed, tau):
    first = sample_random(UNIT_3X3, tau, make_generator(seed))
    second = sample_random(UNIT_3X3, tau, make_generator(seed))
    assert torch.equal(first, second)
    assert first.numel() == 1 << tau
    assert first.unique().numel() == 1 << tau
    assert int(first.min()) >= 0 and int(first.max()) < 1 << UNIT_3X3


def test_random_sampling_depends_on_the_seed():
    tau = 5
    draws = {tuple(sample_random(UNIT_3X3, tau, make_generator(s)).tolist()) for s in range(4)}
    assert len(draws) == 4


def test_derived_seeds_are_stable_and_distinct():
    assert derive_seed(0, "layer1.conv") == derive_seed(0, "layer1.conv")
    seeds = {derive_seed(0, "a"), derive_seed(0, "b"), derive_seed(1, "a"), derive_seed(0, "a", 3)}
    assert len(seeds) == 4
    assert all(0 <= s < 2**63 for s in seeds)


def test_frequent_sampling_picks_the_most_common_sign_patterns():
    table = all_kernels(UNIT_3X3)
    common = [7, 300, 511, 42]
    units = torch.cat([table[c].repeat(10 - i, 1) * (1 + i) for i, c in enumerate(common)])
    units = torch.cat([units, table[100:104]])
    codes = sample_frequent(units, tau=2)
    assert codes.tolist() == sorted(common)


@settings(max_examples=TRAIN_MAX_EXAMPLES, deadline=None)
@given(seed=st.integers(0, 2**31), tau=st.integers(1, 6), rows=st.integers(1, 40))
def test_nearest_is_the_minimum_l2_codeword(seed, tau, rows):
    generator = make_generator(seed)
    codebook = all_kernels(UNIT_3X3)[sample_random(UNIT_3X3, tau, generator)]
    units = torch.randn(rows, UNIT_3X3, generator=generator)
    idx = nearest(units, codebook)
    distances = torch.cdist(units, codebook)
    chosen = distances.gather(1, idx[:, None]).squeeze(1)
    torch.testing.assert_close(chosen, distances.min(dim=1).values, rtol=0, atol=STATISTIC_ATOL)


def test_duplicate_mask_keeps_first_occurrences():
    codes = torch.tensor([5, 3, 5, 7, 3, 5])
    assert duplicate_mask(codes).tolist() == [False, False, True, False, True, True]


def test_sample_missing_avoids_present_codes_and_fails_when_exhausted():
    present = torch.arange(0, 250)
    fresh = sample_missing(present, 6, UNIT_1X1, make_generator(0))
    assert fresh.unique().numel() == 6
    assert not set(fresh.tolist()) & set(present.tolist())
    with pytest.raises(ConfigError, match="cannot refill"):
        sample_missing(present, 7, UNIT_1X1, make_generator(0))
