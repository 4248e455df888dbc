"""keras_bandrnn.sizing against the parameters real models hold."""

import doctest

import keras
import numpy as np
import pytest

import keras_bandrnn as kb
from keras_bandrnn import sizing
from tests.cells.conftest import grid_owned


def model_params(layer, input_dim, output_dim):
    layers = [keras.Input((None, input_dim)), layer]
    if output_dim:
        layers.append(keras.layers.Dense(output_dim))
    return keras.Sequential(layers).count_params()


def padding_slots(n, lower, upper):
    return sum(1 for i in range(n) for j in range(lower + upper + 1) if not 0 <= i + j - lower < n)


@pytest.mark.parametrize("units,d,o", [(7, 3, 0), (40, 2, 5)])
def test_counts_equal_keras_layers(units, d, o):
    assert sizing.count_params("simple_rnn", units, d, o) == model_params(keras.layers.SimpleRNN(units), d, o)
    assert sizing.count_params("lstm", units, d, o) == model_params(keras.layers.LSTM(units), d, o)
    assert sizing.count_params("gru", units, d, o) == model_params(keras.layers.GRU(units), d, o)
    assert sizing.count_params("gru", units, d, o, reset_after=False) == model_params(
        keras.layers.GRU(units, reset_after=False), d, o)


@pytest.mark.parametrize("units,lower,upper", [(7, 3, 1), (40, 4, 4), (5, 4, 4)])
def test_band_counts_exclude_padding(units, lower, upper):
    d, o = 2, 3
    full = model_params(keras.layers.RNN(kb.BandCell(units, lower=lower, upper=upper)), d, o)
    got = sizing.count_params("band", units, d, o, lower=lower, upper=upper)
    assert got == full - padding_slots(units, lower, upper)
    assert sizing.count_params("band", units, d, o, lower=lower, upper=upper, count_padding=True) == full


def test_closed_and_factorized_counts_equal_the_models():
    d, o = 3, 4
    for fixed in (False, True):
        cell = kb.ClosedBandCell(20, half_width=3, shift=3, fixed_shift=fixed)
        name = "closed_fixed" if fixed else "closed"
        assert sizing.count_params(name, 20, d, o, half_width=3) == model_params(keras.layers.RNN(cell), d, o)
    cell = kb.FactorizedCell(20, rank=4)
    assert sizing.count_params("factorized", 20, d, o, rank=4) == model_params(keras.layers.RNN(cell), d, o)


@pytest.mark.parametrize("units,lower,upper,stride", [(13, 1, 1, 4), (12, 2, 0, 3), (9, 3, 2, 1), (30, 2, 2, 7)])
def test_grid_counts_each_entry_once(units, lower, upper, stride):
    rows, cols = grid_owned(units, lower, upper, stride)
    pattern = np.zeros((units, units), bool)
    for r in range(units):
        for c in range(units):
            pattern[r, c] = -lower <= c - r <= upper or r % stride == 0 or c % stride == 0
    band_entries = units * (lower + upper + 1) - padding_slots(units, lower, upper)
    assert band_entries + rows.sum() + cols.sum() == pattern.sum()  # the reference is consistent
    assert sizing.grid_entries(units, lower, upper, stride) == pattern.sum() - band_entries
    cell = kb.GridBandCell(units, lower=lower, upper=upper, grid_stride=stride)
    stored = model_params(keras.layers.RNN(cell), 2, 0)
    masked = (rows.size - rows.sum()) + (cols.size - cols.sum()) + padding_slots(units, lower, upper)
    assert sizing.count_params("grid", units, 2, lower=lower, upper=upper, grid_stride=stride) == stored - masked


@pytest.mark.parametrize("model", sizing.MODELS)
@pytest.mark.parametrize("budget", [5_000, 80_000, 540_000])
def test_units_for_budget_is_the_largest_fitting_multiple(model, budget):
    kw = dict(half_width=8, rank=8, grid_stride=16)
    n = sizing.units_for_budget(model, budget, 3, 23, multiple=16, **kw)
    assert n % 16 == 0 and n > 0
    assert sizing.count_params(model, n, 3, 23, **kw) <= budget < sizing.count_params(model, n + 16, 3, 23, **kw)
    near = sizing.units_for_budget(model, budget, 3, 23, multiple=16, rounding="nearest", **kw)
    dist = [abs(sizing.count_params(model, m, 3, 23, **kw) - budget) for m in (n, n + 16)]
    assert near == (n if dist[0] <= dist[1] else n + 16)


def test_units_for_budget_edge_cases():
    assert sizing.units_for_budget("lstm", 10, 3) == 0
    with pytest.raises(ValueError, match="rounding"):
        sizing.units_for_budget("lstm", 10, 3, rounding="up")
    with pytest.raises(ValueError, match="model"):
        sizing.count_params("transformer", 10, 3)


def test_seed_table_is_reproduced_with_the_inferred_conventions():
    """Input 3 (a column of 3 dots), read-out 23, nearest multiple of 32."""
    kw = dict(multiple=32, rounding="nearest", half_width=32, rank=32, grid_stride=864)
    for model, units in sizing.SEED_TABLE[80_000].items():
        assert sizing.units_for_budget(model, 80_000, 3, 23, **kw) == units, model


def test_doctests():
    failures, tried = doctest.testmod(sizing)
    assert tried >= 3 and failures == 0


def test_shift_initializer_doctest():
    from keras_bandrnn import initializers

    failures, tried = doctest.testmod(initializers, extraglobs={"keras_bandrnn": kb})
    assert tried >= 2 and failures == 0
