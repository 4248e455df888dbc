"""`block_gru_update` composed of stock TensorFlow ops (no custom kernels).

Used when the compiled library is unavailable, inside `dispatch.pure_tf()`
(SavedModel export), to define the op's gradient, and by
`ConditionalGRUCell` for activations other than tanh and sigmoid. The open
`(sample, block)` pairs are gathered as rows of `(B * g, ...)` views,
updated, and scattered back into `h`, so that the work past the gather is
proportional to the open pairs and closed blocks keep `h` exactly. Half
precision is computed in float32, as the kernels do.
"""

import tensorflow as tf


def block_gru_update(h, xp, hp, gate, bias, activation=tf.tanh, recurrent_activation=tf.sigmoid):
    """See `keras_bandrnn.ops.block_gru_update`; the activations may be changed."""
    dtype = h.dtype
    if dtype in (tf.float16, tf.bfloat16):
        h, xp, hp, gate, bias = (tf.cast(t, tf.float32) for t in (h, xp, hp, gate, bias))
    batch, n = tf.shape(h)[0], tf.shape(h)[1]
    g = tf.shape(gate)[1]
    L = n // g
    # Row b * g + i of the (B * g, ...) views is block i of sample b.
    rows = tf.where(tf.reshape(gate > 0, [-1]))[:, 0]
    xo = tf.gather(tf.reshape(xp, (-1, 2, L)), rows)  # (P, 2, L): [r | h] parts
    xo += tf.gather(tf.reshape(bias, (g, 2, L)), rows % tf.cast(g, rows.dtype))
    ho = tf.gather(tf.reshape(hp, (-1, 2, L)), rows)
    r = recurrent_activation(xo[:, 0] + ho[:, 0])
    hc = activation(xo[:, 1] + r * ho[:, 1])
    h2 = tf.reshape(h, (-1, L))
    z = tf.tanh(tf.gather(tf.reshape(gate, [-1]), rows))[:, None]
    h_open = (1.0 - z) * tf.gather(h2, rows) + z * hc
    out = tf.reshape(tf.tensor_scatter_nd_update(h2, rows[:, None], h_open), (batch, n))
    return tf.cast(out, dtype)
