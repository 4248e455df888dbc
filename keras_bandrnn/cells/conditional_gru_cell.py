"""`ConditionalGRUCell`: a GRU whose sparse update gate skips computation.

SPEC section 4; seed 003, chapter 4 (eqs. 4.5, 4.8-4.11).
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

from keras_bandrnn.export import SavedModelGuard
from keras_bandrnn.ops import block_gru_update
from keras_bandrnn.ops import block_gru_update_fallback
from keras_bandrnn.ops import block_sparse_matmul

GATINGS = ("block", "unstructured")
# The activations the fused `block_gru_update` kernel computes.
_TANH = (activations.tanh, tf.tanh, tf.nn.tanh)
_SIGMOID = (activations.sigmoid, tf.sigmoid, tf.nn.sigmoid)
# Most samples for which unstructured gating computes the recurrent product
# per open (sample, unit) pair; larger batches take the dense product.
# Measured at 1024 units, 50 and 75% of the units closed (eager, against the
# dense product): 0.4-0.6x the time at batch 2, 1.2-1.9x at batch 4,
# 1.4-1.6x at batch 8, 2.5-3.8x at batch 64.
_OPEN_PAIRS_MAX_BATCH = 2


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def cliptanh(v):
    """`tanh(max(v, 0))`: exactly 0 for `v <= 0` (seed eq. 4.6)."""
    return ops.tanh(ops.relu(v))


@keras.saving.register_keras_serializable(package="keras_bandrnn")
class ConditionalGRUCell(SavedModelGuard, keras.layers.Layer, DropoutRNNCell):
    """GRU cell with a sparse, low-rank update gate that skips computation.

    The update gate `z` is computed through a `gate_dim`-wide bottleneck and
    a clipped tanh, so many of its entries are exactly 0; where `z` is 0 the
    state passes through unchanged and, at inference, the reset gate and
    candidate state are not computed (seed 003, chapter 4):

    ```
    r      = recurrent_activation(x W_r + h U_r + b_r)
    h_cand = activation(x W_h + r * (h U_h) + b_h)     # reset gate outside U_h
    z_lr   = relu(x W_zl + h U_zl + b_zl)              # width gate_dim
    z      = cliptanh(BN_s(z_lr W_z + b_z))            # gating="unstructured"
    z      = repeat(cliptanh(BN_s(z_lr)), units // gate_dim)   # gating="block"
    h_t    = (1 - z) * h + z * h_cand
    ```

    with `cliptanh(v) = tanh(max(v, 0))` and
    `BN_s(v) = (v - mean) / sqrt(var + gate_epsilon) + sparsity_bias`, using
    the batch statistics in training (and updating moving averages with
    `gate_momentum`) and the moving averages at inference. More negative
    `sparsity_bias` closes more gates: more speed, less capacity.

    Inference (`training=False`, `conditional_inference=True`):
    - `gating="block"` (for batches): unit block `i` (of `units // gate_dim`
      units) is open for a sample when its gate is > 0. The `r` and `h_cand`
      parts of the input and recurrent products are computed only for open
      (sample, block) pairs, by `keras_bandrnn.ops.block_sparse_matmul`,
      and `r`, `h_cand` and the state update only on those pairs, by
      `keras_bandrnn.ops.block_gru_update` (one kernel for the default
      tanh / sigmoid activations): past the gate, a step's cost scales with
      the open fraction, and closed blocks pass `h` through exactly.
    - `gating="unstructured"` (meant for batch 1): up to batch 2 the
      recurrent product is computed only for the open (sample, unit) pairs,
      by `block_sparse_matmul` (block size 1) over the rows of the
      transposed `recurrent_kernel`, and densely for larger batches; closed
      units pass `h` through exactly.
    Results equal the dense computation (`conditional_inference=False`, also
    what training uses) to float tolerance.

    Weight layout: `kernel` `(input_dim, 2 * units)` and `recurrent_kernel`
    `(units, 2 * units)` hold `[W_r | W_h]` and `[U_r | U_h]` interleaved per
    gate block: columns `[2 i L, (2 i + 1) L)` are the `r` columns of units
    `[i L, (i + 1) L)` and the next `L` columns their `h` columns, with
    `L = units // gate_dim` for block gating and `L = units` (plain
    `[r | h]`) for unstructured gating. This makes the open blocks of both
    parts one `block_sparse_matmul` with block size `2 L`. `bias`
    `(2 * units,)` (`[b_r | b_h]`) follows the same layout. With
    unstructured gating `recurrent_kernel` is stored transposed,
    `(2 * units, units)` = `[U_r | U_h]^T`, so that each open unit reads
    two contiguous rows. The gate has
    `gate_kernel` `(input_dim, gate_dim)`, `recurrent_gate_kernel`
    `(units, gate_dim)`, `gate_bias`, and for unstructured gating
    `gate_output_kernel` `(gate_dim, units)` and `gate_output_bias`; the
    batch-normalization statistics are the non-trainable `moving_mean` and
    `moving_variance`.

    Sparsity metric: `closed_fraction` is a `keras.metrics.Mean` (named
    `"<cell name>_closed_fraction"`) averaging, over every step the cell
    ran, the fraction of closed gate blocks (block gating: (sample, block)
    pairs with gate 0; unstructured: (sample, unit) pairs with `z == 0`).
    Keras lists it among the model's metrics, so it appears in the logs of
    `fit` and `evaluate` and is reset with the other metrics; read it any
    time with `cell.closed_fraction.result()` (reset with
    `cell.closed_fraction.reset_state()`). Note that `keras.layers.RNN`'s
    TensorFlow loop evaluates the cell once more on the first time step (to
    infer output shapes), so that step counts twice in the metric (and in
    the moving statistics' update during training).

    Args:
        units: Positive integer, dimensionality of the state.
        gate_dim: Positive integer, width of the gate bottleneck `z_lr`. For
            block gating it is the number of gate blocks and must divide
            `units` (block size `units // gate_dim`).
        gating: `"block"` (default) or `"unstructured"`.
        sparsity_bias: float `<= 0`, the `s` of `BN_s`. Default: 0.
        activation: Activation of the candidate state. Default: `tanh`.
        recurrent_activation: Activation of the reset gate. Default: `sigmoid`.
        use_bias: Boolean (default `True`), whether the layer uses biases.
        kernel_initializer: Initializer of the input kernels (`kernel`,
            `gate_kernel`, `gate_output_kernel`). Default: `"glorot_uniform"`.
        recurrent_initializer: Initializer of `recurrent_kernel` and
            `recurrent_gate_kernel`. Default: `"orthogonal"`.
        bias_initializer: Initializer of the biases. Default: `"zeros"`.
        kernel_regularizer: Regularizer of the input kernels. Default: `None`.
        recurrent_regularizer: Regularizer of the recurrent kernels.
            Default: `None`.
        bias_regularizer: Regularizer of the biases. Default: `None`.
        kernel_constraint: Constraint of the input kernels. Default: `None`.
        recurrent_constraint: Constraint of the recurrent kernels.
            Default: `None`.
        bias_constraint: Constraint of the biases. Default: `None`.
        dropout: Float between 0 and 1. Fraction of the input units to drop
            (training only). Default: 0.
        recurrent_dropout: Float between 0 and 1. Fraction of the state units
            to drop in the recurrent products (training only). Default: 0.
        gate_momentum: Momentum of the moving gate statistics. Default: 0.99.
        gate_epsilon: Small float added to the variance. Default: 1e-3.
        conditional_inference: Boolean (default `True`): at inference, compute
            only the open gate blocks. `False` always runs the dense path.
        seed: Random seed for dropout.

    Call arguments:
        inputs: A 2D tensor, with shape `(batch, features)`.
        states: A 2D tensor with shape `(batch, units)`, the previous state.
        training: Python boolean: batch statistics and dropout in training,
            moving statistics and (if enabled) conditional computation at
            inference.

    Example:

    >>> inputs = np.random.random((8, 10, 27)).astype("float32")
    >>> cell = ConditionalGRUCell(64, gate_dim=16, sparsity_bias=-0.5)
    >>> rnn = keras.layers.RNN(cell, return_sequences=True)
    >>> rnn(inputs).shape
    (8, 10, 64)
    >>> 0.0 <= float(cell.closed_fraction.result()) <= 1.0
    True
    """

    def __init__(
        self,
        units,
        gate_dim,
        gating="block",
        sparsity_bias=0.0,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        gate_momentum=0.99,
        gate_epsilon=1e-3,
        conditional_inference=True,
        seed=None,
        **kwargs,
    ):
        units = _check_int(units, "units", 1)
        gate_dim = _check_int(gate_dim, "gate_dim", 1)
        if gating not in GATINGS:
            raise ValueError(f"`gating` must be one of {GATINGS}, got {gating!r}.")
        if gating == "block" and units % gate_dim:
            raise ValueError(
                f"Block gating needs `gate_dim` to divide `units` (block size "
                f"units // gate_dim); got units={units}, gate_dim={gate_dim}."
            )
        try:
            sparsity_bias = float(sparsity_bias)
        except (TypeError, ValueError):
            raise ValueError(f"`sparsity_bias` must be a float <= 0, got {sparsity_bias!r}.") from None
        if not sparsity_bias <= 0:
            raise ValueError(f"`sparsity_bias` must be <= 0, got {sparsity_bias}.")
        if not 0.0 <= gate_momentum < 1.0:
            raise ValueError(f"`gate_momentum` must be in [0, 1), got {gate_momentum}.")
        if not gate_epsilon > 0:
            raise ValueError(f"`gate_epsilon` must be > 0, got {gate_epsilon}.")
        for name, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"`{name}` must be in [0, 1], got {rate}.")
        super().__init__(**kwargs)
        self.supports_jit = False
        self.units = units
        self.gate_dim = gate_dim
        self.gating = gating
        self.sparsity_bias = sparsity_bias
        self.activation = activations.get(activation)
        self.recurrent_activation = activations.get(recurrent_activation)
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
        self.gate_momentum = float(gate_momentum)
        self.gate_epsilon = float(gate_epsilon)
        self.conditional_inference = bool(conditional_inference)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed=seed)
        self.state_size = units
        self.output_size = units
        self.closed_fraction = keras.metrics.Mean(name=f"{self.name}_closed_fraction")

    @property
    def layout_block(self):
        """`L`: units per interleaved `[r | h]` column group (see the class doc)."""
        return self.units // self.gate_dim if self.gating == "block" else self.units

    @property
    def gate_block_size(self):
        """Units sharing one gate value: `units // gate_dim` (block) or 1."""
        return self.units // self.gate_dim if self.gating == "block" else 1

    def _kernel(self, name, shape, kind):
        init, reg, con = {
            "kernel": (self.kernel_initializer, self.kernel_regularizer, self.kernel_constraint),
            "recurrent": (self.recurrent_initializer, self.recurrent_regularizer, self.recurrent_constraint),
            "bias": (self.bias_initializer, self.bias_regularizer, self.bias_constraint),
        }[kind]
        return self.add_weight(shape=shape, name=name, initializer=init, regularizer=reg, constraint=con)

    def build(self, input_shape):
        super().build(input_shape)
        input_dim = input_shape[-1]
        u, g = self.units, self.gate_dim
        self.kernel = self._kernel("kernel", (input_dim, 2 * u), "kernel")
        # Unstructured gating keeps U transposed, (2 units, units), so that an
        # open unit's weights are two contiguous rows (see the class doc).
        shape = (u, 2 * u) if self.gating == "block" else (2 * u, u)
        self.recurrent_kernel = self._kernel("recurrent_kernel", shape, "recurrent")
        self.gate_kernel = self._kernel("gate_kernel", (input_dim, g), "kernel")
        self.recurrent_gate_kernel = self._kernel("recurrent_gate_kernel", (u, g), "recurrent")
        self.bias = self._kernel("bias", (2 * u,), "bias") if self.use_bias else None
        self.gate_bias = self._kernel("gate_bias", (g,), "bias") if self.use_bias else None
        stats = g
        if self.gating == "unstructured":
            stats = u
            self.gate_output_kernel = self._kernel("gate_output_kernel", (g, u), "kernel")
            self.gate_output_bias = (
                self._kernel("gate_output_bias", (u,), "bias") if self.use_bias else None
            )
        self.moving_mean = self.add_weight(
            shape=(stats,), name="moving_mean", initializer="zeros", trainable=False
        )
        self.moving_variance = self.add_weight(
            shape=(stats,), name="moving_variance", initializer="ones", trainable=False
        )

    # -- gate ---------------------------------------------------------------

    def _gate_values(self, x, h):
        """The gate's values before the normalization, `(B, gate_dim)` (block)
        or `(B, units)` (SPEC section 4)."""
        zl = ops.matmul(x, self.gate_kernel) + ops.matmul(h, self.recurrent_gate_kernel)
        if self.use_bias:
            zl = zl + self.gate_bias
        v = ops.relu(zl)
        if self.gating == "unstructured":
            v = ops.matmul(v, self.gate_output_kernel)
            if self.use_bias:
                v = v + self.gate_output_bias
        return v

    def _gate_preactivation(self, x, h, training):
        """`BN_s(...)` of `_gate_values`: the gate is its `cliptanh`, 0 exactly
        where it is <= 0."""
        v = self._gate_values(x, h)
        if training:
            mean, var = ops.moments(v, axes=[0])
            m = self.gate_momentum
            self.moving_mean.assign(
                self.moving_mean * m + ops.cast(mean, self.moving_mean.dtype) * (1.0 - m)
            )
            self.moving_variance.assign(
                self.moving_variance * m + ops.cast(var, self.moving_variance.dtype) * (1.0 - m)
            )
        else:
            mean = ops.cast(self.moving_mean, v.dtype)
            var = ops.cast(self.moving_variance, v.dtype)
        return (v - mean) * ops.rsqrt(var + self.gate_epsilon) + self.sparsity_bias

    def _expand(self, gate):
        """Gate values -> `z` of shape `(B, units)`."""
        if self.gating == "block":
            return ops.repeat(gate, self.gate_block_size, axis=1)
        return gate

    # -- r and h_cand from the interleaved products -------------------------

    def _candidate(self, xp, hp):
        """`h_cand` `(B, n)` from interleaved `x W + b` and `h U` `(B, 2 n)`."""
        L = self.layout_block
        xp = ops.reshape(xp, (ops.shape(xp)[0], -1, 2, L))
        hp = ops.reshape(hp, (ops.shape(hp)[0], -1, 2, L))
        r = self.recurrent_activation(xp[:, :, 0] + hp[:, :, 0])
        hc = self.activation(xp[:, :, 1] + r * hp[:, :, 1])
        return ops.reshape(hc, (ops.shape(hc)[0], -1))

    def call(self, inputs, states, training=False):
        h = states[0] if isinstance(states, (list, tuple)) else states
        x = inputs
        x_d, h_d = x, h
        if training and 0.0 < self.dropout < 1.0:
            x_d = x * self.get_dropout_mask(x)
        if training and 0.0 < self.recurrent_dropout < 1.0:
            h_d = h * self.get_recurrent_dropout_mask(h)

        v = self._gate_preactivation(x_d, h_d, training)
        # cliptanh(v) == 0 exactly where v <= 0.
        closed = ops.mean(ops.cast(ops.less_equal(v, 0), "float32"))
        self.closed_fraction.update_state(closed)

        if not training and self.conditional_inference:
            if self.gating == "block":
                h_new = self._block_conditional(x, h, v)
            else:
                h_new = self._unstructured_conditional(x, h, cliptanh(v))
        else:
            z = self._expand(cliptanh(v))
            xp = ops.matmul(x_d, self.kernel)
            if self.use_bias:
                xp = xp + self.bias
            hc = self._candidate(xp, self._recurrent(h_d))
            h_new = (1.0 - z) * h + z * hc
        new_state = [h_new] if isinstance(states, (list, tuple)) else h_new
        return h_new, new_state

    def _recurrent(self, h):
        """`h U` (interleaved columns), whichever way U is stored."""
        if self.gating == "block":
            return ops.matmul(h, self.recurrent_kernel)
        return tf.matmul(h, ops.cast(self.recurrent_kernel, h.dtype), transpose_b=True)

    def _block_conditional(self, x, h, v):
        """Only the open (sample, block) pairs are multiplied and updated.

        The products come from `block_sparse_matmul` (work proportional to the
        open pairs); the open pairs' `r`, `h_cand` and state update are then
        computed on those pairs alone by `block_gru_update` (one kernel; with
        activations other than tanh and sigmoid, its stock-op composition,
        which gathers the open pairs and scatters them into `h`), so that
        closed blocks keep `h` exactly and cost nothing past the gate.
        """
        L = self.layout_block
        mask = v > 0  # the open blocks, where the gate cliptanh(v) is > 0
        # In a graph the two products may run side by side. (Ordering the input
        # product after the recurrent one, with a control dependency, was
        # 5-8% slower per step at 75% closed, measured on the benchmark's
        # shapes, once the kernels' helpers ran on the inter-op threads; it
        # had been 4-11% faster when they ran on the intra-op pool. Two other
        # input products were measured there at 75% closed, against this one:
        # dense `x @ kernel`, which need not wait for the gate, 0.86-0.91x the
        # step's time at 16/64, 0.90x at 32/32 but 1.04x at 64/16, 0.93-1.39x
        # with 64 to 256 inputs; computed inside `block_gru_update`, pair by
        # pair, within noise at 27 inputs and 1.9x the eager time at 256.
        # Leaving the input product out altogether bounds the gain: 0.85-0.92x
        # at 16/64.)
        hp = block_sparse_matmul(h, ops.cast(self.recurrent_kernel, h.dtype), mask, 2 * L)
        xp = block_sparse_matmul(x, ops.cast(self.kernel, x.dtype), mask, 2 * L)
        bias = ops.cast(self.bias, x.dtype) if self.use_bias else tf.zeros([2 * self.units], x.dtype)
        v = ops.cast(v, h.dtype)
        if self.activation in _TANH and self.recurrent_activation in _SIGMOID:
            return block_gru_update(h, xp, hp, v, bias)
        return block_gru_update_fallback.block_gru_update(
            h, xp, hp, v, bias, self.activation, self.recurrent_activation
        )

    def _unstructured_conditional(self, x, h, z):
        """Only the open (sample, unit) pairs' recurrent products are computed.

        With U stored transposed, `(h U)^T = U^T h^T` is a
        `block_sparse_matmul` of block size 1 whose rows are the weight rows
        `[U_r | U_h]^T` and whose columns are the samples: each sample reads
        only its open units' rows (adjacent samples with the same open units
        share the reads). Closed pairs keep `h` exactly. The input product
        stays dense: it is `input_dim` wide, small next to the recurrent one.
        (Gathering the rows of the units open for some sample, then one dense
        product and a scatter, took 1.2-1.3x the dense step's time at batch 1,
        75% closed, measured on the benchmark's shapes.) Above
        `_OPEN_PAIRS_MAX_BATCH` samples the recurrent product is dense: the
        block-size-1 product re-reads a unit's rows for every sample that has
        it open, and already at batch 4 took longer than the dense one.
        """
        z = self._expand(z)
        is_open = z > 0

        def open_pairs():
            mask = tf.tile(tf.transpose(is_open), [2, 1])  # (2 units, B): [r | h] rows
            kernel = ops.cast(self.recurrent_kernel, h.dtype)
            return tf.transpose(block_sparse_matmul(kernel, tf.transpose(h), mask, 1))

        hp = tf.cond(tf.shape(h)[0] <= _OPEN_PAIRS_MAX_BATCH, open_pairs, lambda: self._recurrent(h))
        xp = ops.matmul(x, ops.cast(self.kernel, x.dtype))
        if self.use_bias:
            xp = xp + ops.cast(self.bias, x.dtype)
        hc = self._candidate(xp, hp)
        return tf.where(is_open, (1.0 - z) * h + z * hc, h)

    def get_config(self):
        config = {
            "units": self.units,
            "gate_dim": self.gate_dim,
            "gating": self.gating,
            "sparsity_bias": self.sparsity_bias,
            "activation": activations.serialize(self.activation),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
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
            "gate_momentum": self.gate_momentum,
            "gate_epsilon": self.gate_epsilon,
            "conditional_inference": self.conditional_inference,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, self.state_size), dtype=self.compute_dtype)]
