"""Shared machinery of the recurrent cells (not public API).

`RecurrentCellBase` is a Keras RNN cell computing
`h_t = activation(x_t W + recurrence(h_{t-1}) + b)`, where subclasses define the
recurrence (`_build_recurrent`, `_recurrent`, `_recurrent_config`). It carries
the usual Keras cell arguments and dropout semantics (one mask per sequence,
through Keras's `DropoutRNNCell`).

`BandCellBase` adds the band recurrence `band_matmul(h, D)` with its options:
the band's extent, shift initialization, a fixed (non-trainable) shift and the
active half-width that `keras_bandrnn.callbacks.BandWidthScheduler` controls.
With `tanh`, its step is one `band_matmul_tanh` (`_step`), the terms besides
the band (`_beside_band`: fixed shift, grid hubs) joining the addend.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import activations
from keras import constraints
from keras import initializers
from keras import ops
from keras import regularizers
from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell

from keras_bandrnn import band
from keras_bandrnn import ops as band_ops
from keras_bandrnn.export import SavedModelGuard
from keras_bandrnn.initializers import Shift


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def default_band_initializer():
    """Entries of variance `1 / k`: each row of the band sums `k` terms, so the
    recurrent matrix starts with a spectral radius near 1 (circular law)."""
    return initializers.VarianceScaling(scale=1.0, mode="fan_out", distribution="uniform")


class RecurrentCellBase(SavedModelGuard, keras.layers.Layer, DropoutRNNCell):
    """`h_t = activation(x_t W + recurrence(h_{t-1}) + b)`; see the module doc."""

    def __init__(
        self,
        units,
        activation="tanh",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer=None,
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        **kwargs,
    ):
        units = _check_int(units, "units", 1)
        for name, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0.0 <= float(rate) <= 1.0:
                raise ValueError(f"`{name}` must be in [0, 1], got {rate!r}.")
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

        self.units = units
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)

        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)

        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)

        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        self.state_size = self.units
        self.output_size = self.units

    # Subclass hooks -------------------------------------------------------
    def _build_recurrent(self, input_dim):
        raise NotImplementedError

    def _recurrent(self, h):
        """`h A^T` for the cell's recurrent matrix `A`, `h` of shape `(B, units)`."""
        raise NotImplementedError

    def _recurrent_config(self):
        return {}

    def _step(self, z, h):
        """`activation(z + recurrence(h))`, `z` being `x_t W + b`."""
        z = z + self._recurrent(h)
        return self.activation(z) if self.activation is not None else z

    # Keras cell API -------------------------------------------------------
    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                f"The last dimension of the inputs to `{type(self).__name__}` "
                f"must be known; got input shape {input_shape}."
            )
        self.kernel = self.add_weight(
            shape=(input_dim, self.units),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self._build_recurrent(input_dim)
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(self.units,),
                name="bias",
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None

    def call(self, sequence, states, training=False):
        h_prev = states[0] if isinstance(states, (list, tuple)) else states
        dp_mask = self.get_dropout_mask(sequence)
        rec_dp_mask = self.get_recurrent_dropout_mask(h_prev)
        if training and dp_mask is not None:
            sequence = sequence * dp_mask
        z = ops.matmul(sequence, self.kernel)
        if self.bias is not None:
            # BiasAdd rather than `+`: Grappler fuses MatMul + BiasAdd into one op.
            z = tf.nn.bias_add(z, tf.cast(self.bias, z.dtype))
        if training and rec_dp_mask is not None:
            h_prev = h_prev * rec_dp_mask
        output = self._step(z, h_prev)
        new_state = [output] if isinstance(states, (list, tuple)) else output
        return output, new_state

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, self.state_size), dtype=self.compute_dtype)]

    def _weight(self, variable):
        """A weight as a tensor in the compute dtype (for the TF ops)."""
        return tf.cast(ops.convert_to_tensor(variable), self.compute_dtype)

    def get_config(self):
        config = {
            "units": self.units,
            **self._recurrent_config(),
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}


def resolve_band(units, half_width, lower, upper):
    """`(lower, upper)` from the cell arguments; `half_width` sets both sides."""
    if half_width is not None:
        half_width = _check_int(half_width, "half_width", 0)
        for name, value in (("lower", lower), ("upper", upper)):
            if value is not None and value != half_width:
                raise ValueError(
                    f"Pass either `half_width` or `lower`/`upper`: got "
                    f"half_width={half_width} and {name}={value}."
                )
        lower = upper = half_width
    if lower is None or upper is None:
        raise ValueError(
            "The band needs `half_width`, or both `lower` and `upper`; got "
            f"half_width={half_width}, lower={lower}, upper={upper}."
        )
    return _check_int(lower, "lower", 0), _check_int(upper, "upper", 0)


def zero_padding(value, n, lower, upper):
    """Sets the padding entries of open-band diagonals `(n, k)` to 0.

    Padding only occurs in the first `lower` and last `upper` rows, so only
    those rows are masked (no `(n, k)` mask for very large `n`).
    """
    if n <= lower + upper:
        return value * band.valid_mask(n, lower, upper).astype(np.float32)
    top = band.valid_mask(n, lower, upper)[:lower] if lower else None
    rows = np.arange(n - upper, n)
    k = band.bandwidth(lower, upper)
    cols = rows[:, None] + np.arange(k)[None, :] - lower
    bottom = (cols < n).astype(np.float32)
    parts = []
    if lower:
        parts.append(value[:lower] * top.astype(np.float32))
    parts.append(value[lower : n - upper])
    if upper:
        parts.append(value[n - upper :] * bottom)
    return ops.concatenate(parts, axis=0)


class BandCellBase(RecurrentCellBase):
    """A cell whose recurrent matrix is a band stored as `(units, k)` diagonals."""

    cyclic = False

    def __init__(
        self,
        units,
        half_width=None,
        lower=None,
        upper=None,
        shift=None,
        fixed_shift=False,
        active_half_width=None,
        activation="tanh",
        use_bias=True,
        kernel_initializer=None,
        recurrent_initializer=None,
        **kwargs,
    ):
        units = _check_int(units, "units", 1)
        lower, upper = resolve_band(units, half_width, lower, upper)
        band.check_band_args(units, lower, upper, self.cyclic, name="recurrent_kernel")
        if shift is not None:
            shift = _check_int(shift, "shift", 1)
            if shift > lower:
                raise ValueError(
                    f"`shift` ({shift}) must be <= `lower` ({lower}): the shift "
                    f"diagonal A[i, i - shift] has to lie inside the band."
                )
            if shift >= units:
                raise ValueError(f"`shift` ({shift}) must be < `units` ({units}).")
        if fixed_shift and shift is None:
            raise ValueError("`fixed_shift=True` needs `shift` (the delay per step).")
        if active_half_width is not None:
            active_half_width = _check_int(active_half_width, "active_half_width", 0)
        if kernel_initializer is None:
            # Shift initialization writes x_t into the first input_dim units.
            kernel_initializer = "identity" if shift is not None else "glorot_uniform"
        if recurrent_initializer is None:
            if shift is None:
                recurrent_initializer = default_band_initializer()
            elif fixed_shift:
                recurrent_initializer = "zeros"  # A = S + D starts as the pure shift
            else:
                recurrent_initializer = Shift(shift=shift, closed=self.cyclic, lower=lower)
        super().__init__(
            units,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            **kwargs,
        )
        self.supports_jit = False
        self.lower = lower
        self.upper = upper
        self.shift = shift
        self.fixed_shift = bool(fixed_shift)
        self.active_half_width = active_half_width

    @property
    def bandwidth(self):
        """Number of stored diagonals, `lower + upper + 1`."""
        return band.bandwidth(self.lower, self.upper)

    def _build_recurrent(self, input_dim):
        if self.shift is not None and self.shift < input_dim:
            raise ValueError(
                f"Shift initialization writes x_t into the first `shift` units, "
                f"so it needs `shift` >= the input dimension; got shift="
                f"{self.shift} with input dimension {input_dim}."
            )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.bandwidth),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        if not self.cyclic:
            self.recurrent_kernel.assign(
                zero_padding(self.recurrent_kernel.value, self.units, self.lower, self.upper)
            )
        if self.active_half_width is not None:
            self.band_half_width = self.add_weight(
                shape=(),
                dtype="int32",
                name="active_half_width",
                initializer=initializers.Constant(self.active_half_width),
                trainable=False,
            )
        else:
            self.band_half_width = None
        self._offsets = np.arange(self.bandwidth, dtype=np.int32) - self.lower

    # BandWidthScheduler interface ----------------------------------------
    @property
    def schedulable(self):
        """Whether `BandWidthScheduler` can mask this cell's outer diagonals."""
        return self.active_half_width is not None

    @property
    def max_half_width(self):
        return max(self.lower, self.upper)

    def set_active_half_width(self, value):
        """Keeps diagonals `-value..value` (clipped to the band) active."""
        if not self.schedulable:
            raise ValueError(
                f"{self.name} was built without `active_half_width`; pass "
                f"`active_half_width=` to the cell to let it be scheduled."
            )
        value = int(min(max(int(value), 0), self.max_half_width))
        if not self.built:  # becomes the initial value of the variable
            self.active_half_width = value
            return value
        self.band_half_width.assign(value)
        return value

    def _band_diags(self):
        diags = self._weight(self.recurrent_kernel)
        if self.band_half_width is not None:
            active = tf.abs(tf.constant(self._offsets)) <= tf.convert_to_tensor(
                self.band_half_width
            )
            diags = diags * tf.cast(active, diags.dtype)[None, :]
        return diags

    def _fixed_shift(self, h):
        s = self.shift
        if self.cyclic:
            return tf.roll(h, shift=s, axis=-1)
        return tf.pad(h[:, : self.units - s], [[0, 0], [s, 0]])

    def _beside_band(self, h):
        """The recurrence's terms besides the band product (the fixed shift),
        or None."""
        return self._fixed_shift(h) if self.fixed_shift else None

    def _recurrent(self, h):
        y = band_ops.band_matmul(h, self._band_diags(), self.lower, self.upper, cyclic=self.cyclic)
        beside = self._beside_band(h)
        return y if beside is None else y + beside

    def _step(self, z, h):
        # With tanh (the default) the band product, the sum and the activation
        # run as one op: two fewer ops and passes over (B, units) per step.
        if self.activation is not activations.tanh:
            return super()._step(z, h)
        beside = self._beside_band(h)
        if beside is not None:
            z = z + beside
        return band_ops.band_matmul_tanh(
            h, self._band_diags(), z, self.lower, self.upper, cyclic=self.cyclic
        )

    def _recurrent_config(self):
        return {
            "lower": self.lower,
            "upper": self.upper,
            "shift": self.shift,
            "fixed_shift": self.fixed_shift,
            "active_half_width": self.active_half_width,
        }
