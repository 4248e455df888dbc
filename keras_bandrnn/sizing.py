"""Parameter counts and the number of units that fits a parameter budget.

The seed compares models at a fixed budget of trainable parameters (80k, and
540k for its big model). `count_params` counts one recurrent layer (input
kernel, recurrent weights, biases) plus, optionally, a dense read-out of
`output_dim` classes; `units_for_budget` inverts it.

Counting conventions (they follow what is trainable and used):
- Band cells count the band's stored entries without the padding of an open
  band (`keras_bandrnn.band.num_entries`); `count_padding=True` counts the full
  `(units, k)` storage instead, as `model.count_params()` does.
- `closed_fixed` has the same trainable parameters as `closed` (the fixed
  shift is a constant).
- `grid` counts every entry of the band-plus-hubs matrix once (the masked
  duplicate slots of `hub_rows`/`hub_columns` are not parameters).
- Keras's `GRU` has two bias vectors (`reset_after=True`, the Keras default):
  pass `reset_after=False` for the classic single-bias GRU.

Run `python -m keras_bandrnn.sizing` for the seed's Braille comparison table.
"""

import argparse

from keras_bandrnn import band

MODELS = ("simple_rnn", "gru", "lstm", "factorized", "band", "grid", "closed", "closed_fixed")


def _count_hubs_in(a, b, stride):
    """Number of multiples of `stride` in the integer interval [a, b]."""
    if b < a:
        return 0
    return b // stride - (-(-a // stride)) + 1


def grid_entries(units, lower, upper, grid_stride):
    """Entries the hub grid adds to an open band (each entry counted once)."""
    n, s = units, grid_stride
    hubs = range(0, n, s)
    m = len(hubs)
    total = 0
    for h in hubs:
        band_in_row = min(h + upper, n - 1) - max(h - lower, 0) + 1
        total += n - band_in_row  # hub row: every column outside the band
        lo, hi = max(h - upper, 0), min(h + lower, n - 1)  # rows whose band holds column h
        band_rows = hi - lo + 1
        non_hub_band_rows = band_rows - _count_hubs_in(lo, hi, s)
        total += (n - m) - non_hub_band_rows  # hub column: non-hub rows outside the band
    return total


def recurrent_params(model, units, half_width=32, rank=32, grid_stride=32,
                     lower=None, upper=None, count_padding=False):
    """Trainable parameters of the recurrent matrix alone (no kernel, no bias)."""
    n = units
    lower = half_width if lower is None else lower
    upper = half_width if upper is None else upper
    if model in ("band", "grid"):
        entries = n * band.bandwidth(lower, upper) if count_padding else band.num_entries(n, lower, upper)
        if model == "grid":
            entries += grid_entries(n, lower, upper, grid_stride)
        return entries
    if model in ("closed", "closed_fixed"):
        return n * band.bandwidth(lower, upper)
    if model == "factorized":
        return 2 * n * rank
    raise ValueError(f"`model` must be one of {MODELS}, got {model!r}.")


def count_params(model, units, input_dim, output_dim=0, half_width=32, rank=32,
                 grid_stride=32, lower=None, upper=None, count_padding=False,
                 reset_after=True, use_bias=True):
    """Trainable parameters of one recurrent layer plus an optional read-out.

    Args:
        model: One of `"simple_rnn"`, `"gru"`, `"lstm"` (Keras's layers),
            `"factorized"`, `"band"`, `"grid"`, `"closed"`, `"closed_fixed"`.
        units: Number of recurrent units.
        input_dim: Features per time step.
        output_dim: Classes of a `Dense(output_dim)` read-out on the states
            (with bias); 0 for none.
        half_width, lower, upper: The band (band cells).
        rank: Factorization rank (`"factorized"`).
        grid_stride: Distance between hubs (`"grid"`).
        count_padding: Count the padding slots of an open band's storage.
        reset_after: Keras GRU convention (two bias vectors when True).
        use_bias: Whether the recurrent layer has biases.

    Returns:
        The number of trainable parameters (int).

    Example:

    >>> count_params("lstm", 128, input_dim=3)
    67584
    """
    n, d = int(units), int(input_dim)
    readout = n * output_dim + output_dim if output_dim else 0
    b = 1 if use_bias else 0
    if model == "simple_rnn":
        core = n * (d + n + b)
    elif model == "gru":
        core = 3 * n * (d + n + b * (2 if reset_after else 1))
    elif model == "lstm":
        core = 4 * n * (d + n + b)
    else:
        core = n * (d + b) + recurrent_params(
            model, n, half_width, rank, grid_stride, lower, upper, count_padding
        )
    return int(core + readout)


def units_for_budget(model, budget, input_dim, output_dim=0, multiple=1,
                     rounding="down", **kwargs):
    """The number of units (a multiple of `multiple`) that fits `budget`.

    Takes the arguments of `count_params`.

    Args:
        rounding: `"down"` (default): the largest size whose count is within
            the budget (0 if not even `multiple` units fit). `"nearest"`: the
            size whose count is closest to the budget, possibly above it (the
            convention that reproduces the seed's table).

    Example:

    >>> units_for_budget("band", 80_000, input_dim=3, output_dim=23, multiple=32)
    864
    >>> units_for_budget("band", 80_000, input_dim=3, output_dim=23, multiple=32,
    ...                  rounding="nearest")
    896
    """
    if budget < 0 or multiple < 1:
        raise ValueError(f"`budget` must be >= 0 and `multiple` >= 1, got {budget}, {multiple}.")

    def fits(i):
        return count_params(model, i * multiple, input_dim, output_dim, **kwargs) <= budget

    if rounding not in ("down", "nearest"):
        raise ValueError(f"`rounding` must be 'down' or 'nearest', got {rounding!r}.")
    lo, hi = 0, 1
    while fits(hi):  # counts grow with units
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    if rounding == "nearest" and lo >= 1:
        below = budget - count_params(model, lo * multiple, input_dim, output_dim, **kwargs)
        above = count_params(model, (lo + 1) * multiple, input_dim, output_dim, **kwargs) - budget
        return (lo + 1) * multiple if above < below else lo * multiple
    if rounding == "nearest":
        return multiple
    return lo * multiple


SEED_TABLE = {  # the seed's parameter-matched Braille models (units)
    80_000: {"gru": 160, "lstm": 128, "simple_rnn": 256, "factorized": 864, "band": 896,
             "grid": 864, "closed": 864, "closed_fixed": 864},
    540_000: {"closed_fixed": 5888},
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dim", type=int, default=3)
    parser.add_argument("--output-dim", type=int, default=21)
    parser.add_argument("--multiple", type=int, default=32)
    parser.add_argument("--half-width", type=int, default=32)
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--grid-stride", type=int, default=128)
    args = parser.parse_args(argv)
    kw = dict(half_width=args.half_width, rank=args.rank, grid_stride=args.grid_stride)
    print("| budget | model | seed units | units | params at those units |")
    print("| --- | --- | --- | --- | --- |")
    for budget, rows in SEED_TABLE.items():
        for model, seed_units in rows.items():
            units = units_for_budget(model, budget, args.input_dim, args.output_dim, args.multiple, **kw)
            params = count_params(model, units, args.input_dim, args.output_dim, **kw)
            print(f"| {budget} | {model} | {seed_units} | {units} | {params} |")


if __name__ == "__main__":
    main()
