"""TensorBoard's debiased exponential moving average (docs/design.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainboard import smooth


def test_weight_zero_returns_the_raw_values() -> None:
    values = [3.0, 1.0, 4.0, 1.0, 5.0]
    assert smooth(values, 0.0).tolist() == values


def test_a_constant_series_stays_constant() -> None:
    np.testing.assert_allclose(smooth([2.5] * 50, 0.99), 2.5, rtol=1e-12)


@pytest.mark.parametrize("weight", [0.6, 0.96, 0.999])
@pytest.mark.parametrize("value", [2.5, 0.1, -3e7, 1e-300])
def test_a_constant_series_stays_exactly_constant(value: float, weight: float) -> None:
    series = [math.nan, value] + [value] * 3000
    out = smooth(series, weight)
    assert math.isnan(out[0])
    assert set(out[1:].tolist()) == {value}


def test_debiased_average_matches_the_formula() -> None:
    values = [1.0, 2.0, 3.0]
    w = 0.6
    last, expected = 0.0, []
    for n, y in enumerate(values, start=1):
        last = last * w + (1 - w) * y
        expected.append(last / (1 - w**n))
    np.testing.assert_allclose(smooth(values, w), expected)
    assert smooth(values, w)[0] == pytest.approx(1.0)  # debiasing: no pull towards 0


def test_non_finite_values_pass_through_and_do_not_advance_the_average() -> None:
    out = smooth([1.0, math.nan, math.inf, -math.inf, 1.0], 0.9)
    assert math.isnan(out[1])
    assert out[2] == math.inf
    assert out[3] == -math.inf
    np.testing.assert_allclose(out[[0, 4]], [1.0, 1.0])


def test_weight_outside_0_to_1_is_rejected() -> None:
    with pytest.raises(ValueError, match="weight"):
        smooth([1.0], 1.0)
    with pytest.raises(ValueError, match="weight"):
        smooth([1.0], -0.1)
