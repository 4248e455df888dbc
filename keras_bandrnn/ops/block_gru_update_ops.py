"""`block_gru_update`: the conditional GRU's state update on open gate blocks.

The last part of `ConditionalGRUCell`'s block-gated inference step (SPEC
section 4), after `block_sparse_matmul` has computed the input and recurrent
products of the open blocks: the reset gate, the candidate state and the
interpolation with `h`, on the open `(sample, block)` pairs only, in one
kernel instead of a dozen small TensorFlow ops. Its gradient is the
pure-TF composition's (`block_gru_update_fallback`).
"""

import tensorflow as tf

from keras_bandrnn.ops import block_gru_update_fallback
from keras_bandrnn.ops import dispatch
from keras_bandrnn.ops.band_ops import _check_same_dtype
from keras_bandrnn.ops.band_ops import convert


def _check_shape(t, name, rank, expected, doc):
    """`expected`: the known sizes (None where unknown) of `t`'s dims."""
    if t.shape.rank is None:
        return
    if t.shape.rank != rank or any(
        e is not None and d is not None and e != d for e, d in zip(expected, t.shape)
    ):
        raise ValueError(f"`{name}` must have shape {doc}, got {t.shape}.")


def block_gru_update(h, xp, hp, gate, bias, name=None):
    """The GRU state update of the open gate blocks (block-gated inference).

    With `L = n // g`, gate block `i` of a row holds units `[i L, (i + 1) L)`
    and, in `xp`, `hp` and `bias`, the reset-gate columns
    `[2 i L, 2 i L + L)` and the candidate columns `[2 i L + L, 2 (i + 1) L)`
    of those units (`ConditionalGRUCell`'s interleaved layout). `gate` holds
    the update gate's pre-activations: the gate is `z = tanh(max(gate, 0))`
    (the cell's `cliptanh`), so block `i` of row `b` is open where
    `gate[b, i] > 0`, and there, on its columns, with `z = tanh(gate[b, i])`:

        r = sigmoid(xp + bias + hp)         # reset gate
        h_cand = tanh(xp + bias + r * hp)   # candidate (r outside U_h)
        out = (1 - z) * h + z * h_cand

    Elsewhere (`gate <= 0`, or NaN) `out = h` exactly. The compiled kernels
    only compute the open pairs.

    Args:
        h: `(B, n)` state, float32, float64, bfloat16 or float16 (half types
            compute in float32).
        xp: `(B, 2 n)` input product `x @ W` (interleaved layout), same dtype.
        hp: `(B, 2 n)` recurrent product `h @ U`, same dtype.
        gate: `(B, g)` pre-activations of the gate per block, same dtype;
            `n` is a multiple of `g`.
        bias: `(2 n,)` bias of `xp`, same dtype.
        name: optional op name.

    Returns:
        The new state, `(B, n)`, of the dtype of `h`.

    Example:

    >>> h = tf.zeros([1, 4])
    >>> xp = tf.ones([1, 8]); hp = tf.zeros([1, 8]); bias = tf.zeros([8])
    >>> gate = tf.constant([[0.5, -1.0]])  # block 0 open, z = tanh(0.5)
    >>> out = block_gru_update(h, xp, hp, gate, bias)
    >>> out.numpy().round(3)  # block 0: tanh(0.5) * tanh(1); block 1 stays 0
    array([[0.352, 0.352, 0.   , 0.   ]], dtype=float32)
    """
    with dispatch.name_scope(name or "block_gru_update"):
        h = convert(h, "h")
        xp, hp, gate, bias = (
            convert(t, s) for t, s in ((xp, "xp"), (hp, "hp"), (gate, "gate"), (bias, "bias"))
        )
        for t, s in ((xp, "xp"), (hp, "hp"), (gate, "gate"), (bias, "bias")):
            _check_same_dtype(h, "h", t, s)
        _check_shape(h, "h", 2, (None, None), "(B, n)")
        batch, n = (h.shape[0], h.shape[1]) if h.shape.rank == 2 else (None, None)
        two_n = 2 * n if n is not None else None
        _check_shape(xp, "xp", 2, (batch, two_n), "(B, 2 n)")
        _check_shape(hp, "hp", 2, (batch, two_n), "(B, 2 n)")
        _check_shape(gate, "gate", 2, (batch, None), "(B, g)")
        _check_shape(bias, "bias", 1, (two_n,), "(2 n,)")
        g = gate.shape[1] if gate.shape.rank == 2 else None
        if g is not None and g < 1:
            raise ValueError("`gate` must have at least one column (gate block).")
        if g is not None and n is not None and n % g:
            raise ValueError(
                f"The units n = {n} of `h` are not a multiple of the {g} columns "
                "(gate blocks) of `gate`."
            )
        lib = dispatch.library()
        if lib is not None:
            return lib.block_gru_update(h, xp, hp, gate, bias)
        tensors = (h, xp, hp, gate, bias)
        if not all(t.shape.is_fully_defined() for t in tensors):
            # Sizes unknown while tracing: the checks the kernel would make.
            with tf.control_dependencies(_runtime_checks(*tensors)):
                h = tf.identity(h)
        return block_gru_update_fallback.block_gru_update(h, xp, hp, gate, bias)


def _runtime_checks(h, xp, hp, gate, bias):
    batch, n = tf.shape(h)[0], tf.shape(h)[1]
    g = tf.shape(gate)[1]
    products = tf.stack([batch, 2 * n])
    equal = tf.debugging.assert_equal
    return [
        equal(tf.shape(xp), products, message="`xp` must have shape (B, 2 n)"),
        equal(tf.shape(hp), products, message="`hp` must have shape (B, 2 n)"),
        equal(tf.shape(gate)[0], batch, message="`gate` must have as many rows as `h`"),
        tf.debugging.assert_positive(g, message="`gate` must have at least one column"),
        equal(n % tf.maximum(g, 1), 0, message="the units of `h` must be a multiple of `gate`'s columns"),
        equal(tf.shape(bias), tf.stack([2 * n]), message="`bias` must have shape (2 n,)"),
    ]


@tf.RegisterGradient("BlockGruUpdate")
def _block_gru_update_grad(op, dout):
    inputs = list(op.inputs)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        out = block_gru_update_fallback.block_gru_update(*inputs)
    return tape.gradient(out, inputs, dout, unconnected_gradients=tf.UnconnectedGradients.ZERO)
