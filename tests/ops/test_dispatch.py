"""Op names: each op's graph nodes sit under its name scope (eager calls skip it)."""

import numpy as np
import pytest
import tensorflow as tf

from keras_bandrnn import ops

RNG = np.random.default_rng(0)
X = tf.constant(RNG.standard_normal((2, 4)), tf.float32)
DIAGS = tf.constant(RNG.standard_normal((4, 3)), tf.float32)
W = tf.constant(RNG.standard_normal((4, 4)), tf.float32)
MASK = tf.constant([[True, False], [True, True]])

CALLS = {
    "band_matmul": lambda **kw: ops.band_matmul(X, DIAGS, 1, 1, **kw),
    "band_matmul_tanh": lambda **kw: ops.band_matmul_tanh(X, DIAGS, X, 1, 1, **kw),
    "band_outer": lambda **kw: ops.band_outer(X, X, 1, 1, **kw),
    "block_sparse_matmul": lambda **kw: ops.block_sparse_matmul(X, W, MASK, 2, **kw),
    "block_gru_update": lambda **kw: ops.block_gru_update(X, tf.concat([X, X], 1), tf.concat([X, X], 1),
                                                          X[:, :2], tf.zeros([8]), **kw),
}


def graph_op_names(call, **kwargs):
    graph = tf.function(lambda: call(**kwargs)).get_concrete_function().graph
    return [op.name for op in graph.get_operations() if op.type not in ("Const", "Placeholder", "NoOp")]


@pytest.mark.parametrize("op", sorted(CALLS))
@pytest.mark.parametrize("name", [None, "custom"])
def test_graph_ops_sit_under_the_name_scope(op, name):
    scoped = graph_op_names(CALLS[op], name=name)
    prefix = f"{name or op}/"
    inside = [n for n in scoped if n.startswith(prefix)]
    assert inside, f"no op of {op} under {prefix}: {scoped}"


@pytest.mark.parametrize("op", sorted(CALLS))
def test_eager_call_equals_graph_call_with_a_name(op):
    eager = CALLS[op](name="custom")
    graph = tf.function(lambda: CALLS[op](name="custom"))()
    np.testing.assert_array_equal(eager.numpy(), graph.numpy())


def test_name_scope_applies_in_graphs():
    with tf.Graph().as_default() as g:
        with ops.dispatch.name_scope("outer_scope"):
            t = tf.constant(1.0)
    assert t.name.startswith("outer_scope/"), g.get_operations()
