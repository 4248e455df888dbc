"""block_sparse_matmul against a dense float64 NumPy reference, both implementations."""

import contextlib

import numpy as np
import pytest
import tensorflow as tf

from keras_bandrnn import _lib
from keras_bandrnn.ops import block_sparse_matmul
from keras_bandrnn.ops import block_sparse_ops
from keras_bandrnn.ops import pure_tf


@pytest.fixture(params=["compiled", "pure_tf"])
def impl(request):
    """Runs the test with the compiled kernels or inside `pure_tf()`.

    "compiled" fails (it is not skipped) when the library did not load.
    """
    if request.param == "compiled" and _lib.op_library() is None:
        pytest.fail(f"op library not loaded: {_lib.fallback_reason()}", pytrace=False)
    with contextlib.nullcontext() if request.param == "compiled" else pure_tf():
        yield request.param


TOL = {
    tf.float64: dict(rtol=1e-12, atol=1e-12),
    tf.float32: dict(rtol=2e-5, atol=2e-5),
    tf.float16: dict(rtol=2e-2, atol=2e-2),
    tf.bfloat16: dict(rtol=4e-2, atol=4e-2),
}


def column_mask(mask, block_size):
    return np.repeat(np.asarray(mask, bool), block_size, axis=1)


def reference(x, w, mask, block_size):
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    return np.where(column_mask(mask, block_size), x @ w, 0.0)


def reference_grads(x, w, mask, block_size, dy):
    dym = np.where(column_mask(mask, block_size), np.asarray(dy, np.float64), 0.0)
    return dym @ np.asarray(w, np.float64).T, np.asarray(x, np.float64).T @ dym


def make_inputs(rng, batch, k, n, block_size, density, dtype=tf.float32):
    x = rng.standard_normal((batch, k))
    w = rng.standard_normal((k, n)) / np.sqrt(max(k, 1))
    mask = rng.random((batch, n // block_size)) < density
    # Round through the dtype so the reference sees exactly the same inputs.
    x = tf.cast(x, dtype).numpy().astype(np.float64)
    w = tf.cast(w, dtype).numpy().astype(np.float64)
    return x, w, mask


def as_tf(a, dtype):
    return tf.constant(a, dtype=dtype)


@pytest.mark.parametrize("block_size", [1, 2, 3, 4, 6, 12])
@pytest.mark.parametrize("density", [1.0, 0.0, 0.3, 0.7])
def test_forward_matches_reference(impl, block_size, density):
    rng = np.random.default_rng(block_size * 10 + int(density * 10))
    x, w, mask = make_inputs(rng, 7, 5, 12, block_size, density)
    y = block_sparse_matmul(as_tf(x, tf.float32), as_tf(w, tf.float32), mask, block_size)
    assert y.shape == (7, 12) and y.dtype == tf.float32
    np.testing.assert_allclose(y.numpy(), reference(x, w, mask, block_size), **TOL[tf.float32])


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64, tf.float16, tf.bfloat16])
@pytest.mark.parametrize("block_size", [1, 8, 32])
def test_dtypes_forward_and_gradients(impl, dtype, block_size):
    rng = np.random.default_rng(block_size)
    x, w, mask = make_inputs(rng, 9, 40, 64, block_size, 0.5, dtype)
    dy = tf.cast(rng.standard_normal((9, 64)), dtype).numpy().astype(np.float64)
    xt, wt = as_tf(x, dtype), as_tf(w, dtype)
    with tf.GradientTape() as tape:
        tape.watch([xt, wt])
        y = block_sparse_matmul(xt, wt, mask, block_size)
    dx, dw = tape.gradient(y, [xt, wt], output_gradients=as_tf(dy, dtype))
    assert y.dtype == dx.dtype == dw.dtype == dtype
    np.testing.assert_allclose(
        tf.cast(y, tf.float64).numpy(), reference(x, w, mask, block_size), **TOL[dtype]
    )
    rdx, rdw = reference_grads(x, w, mask, block_size, dy)
    # Gradients sum over more terms (64 columns / 9 rows); scale the tolerance.
    tol = {k: v * 3 for k, v in TOL[dtype].items()}
    np.testing.assert_allclose(tf.cast(dx, tf.float64).numpy(), rdx, **tol)
    np.testing.assert_allclose(tf.cast(dw, tf.float64).numpy(), rdw, **tol)


def test_large_half_precision_accumulates_in_float32(impl):
    # 2048 products of 1: float16 accumulation would stall at 2048 exactly but
    # lose the +0.25 increments; float32 accumulation keeps them.
    k = 2048
    x = np.ones((2, k))
    x[:, 0] = 0.25
    w = np.ones((k, 4))
    y = block_sparse_matmul(as_tf(x, tf.float16), as_tf(w, tf.float16), [[True, False], [True, True]], 2)
    expected = np.float16(reference(x, w, [[True, False], [True, True]], 2))
    np.testing.assert_array_equal(y.numpy(), expected)


@pytest.mark.parametrize("block_size", [1, 4, 16])
@pytest.mark.parametrize("density", [1.0, 0.0, 0.4])
def test_gradients_float64(impl, block_size, density):
    rng = np.random.default_rng(7 + block_size)
    x, w, mask = make_inputs(rng, 6, 10, 16, block_size, density, tf.float64)
    dy = rng.standard_normal((6, 16))
    xt, wt, mt = as_tf(x, tf.float64), as_tf(w, tf.float64), tf.constant(mask)
    with tf.GradientTape() as tape:
        tape.watch([xt, wt, mt])
        y = block_sparse_matmul(xt, wt, mt, block_size)
    dx, dw, dmask = tape.gradient(y, [xt, wt, mt], output_gradients=tf.constant(dy))
    rdx, rdw = reference_grads(x, w, mask, block_size, dy)
    np.testing.assert_allclose(dx.numpy(), rdx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw.numpy(), rdw, rtol=1e-12, atol=1e-12)
    assert dmask is None


@pytest.mark.parametrize("which", ["forward", "grad_x", "grad_w"])
def test_first_and_second_derivatives_numerically(impl, which):
    """tf.test.compute_gradient on each of the three ops (float64)."""
    rng = np.random.default_rng(3)
    bs, mask = 2, tf.constant(rng.random((4, 3)) < 0.5)
    a = tf.constant(rng.standard_normal((4, 5)))
    b = tf.constant(rng.standard_normal((5, 6)))
    c = tf.constant(rng.standard_normal((4, 6)))
    fns = {
        "forward": (lambda p, q: block_sparse_ops._forward(p, q, mask, bs), [a, b]),
        "grad_x": (lambda p, q: block_sparse_ops._grad_x(p, q, mask, bs), [c, b]),
        "grad_w": (lambda p, q: block_sparse_ops._grad_w(p, q, mask, bs), [a, c]),
    }
    fn, args = fns[which]
    theoretical, numerical = tf.test.compute_gradient(fn, args)
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, rtol=1e-7, atol=1e-7)

    def first_grads(p, q):  # gradient of <fn(p, q), c'> w.r.t. both inputs
        with tf.GradientTape() as tape:
            tape.watch([p, q])
            out = fn(p, q)
        weights = tf.constant(np.linspace(-1, 1, int(np.prod(out.shape))).reshape(out.shape))
        gp, gq = tape.gradient(out, [p, q], output_gradients=weights)
        return tf.concat([tf.reshape(gp, [-1]), tf.reshape(gq, [-1])], 0)

    theoretical, numerical = tf.test.compute_gradient(first_grads, args)
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, rtol=1e-7, atol=1e-7)


def test_second_derivative_matches_reference(impl):
    rng = np.random.default_rng(11)
    x, w, mask = make_inputs(rng, 5, 6, 8, 2, 0.5, tf.float64)
    c = rng.standard_normal((5, 8))
    u = rng.standard_normal((5, 6))
    xt, wt = as_tf(x, tf.float64), as_tf(w, tf.float64)
    with tf.GradientTape() as outer:
        outer.watch(wt)
        with tf.GradientTape() as inner:
            inner.watch(xt)
            loss = tf.reduce_sum(block_sparse_matmul(xt, wt, mask, 2) * c)
        gx = inner.gradient(loss, xt)  # (M * c) @ w.T
        second = tf.reduce_sum(gx * u)
    dw = outer.gradient(second, wt)
    mc = np.where(column_mask(mask, 2), c, 0.0)
    np.testing.assert_allclose(dw.numpy(), u.T @ mc, rtol=1e-12, atol=1e-12)


def test_numeric_mask_is_nonzero(impl):
    rng = np.random.default_rng(5)
    x, w, mask = make_inputs(rng, 4, 3, 6, 3, 0.5)
    for m in (mask.astype(np.int32), mask.astype(np.float32), mask.astype(np.int64)):
        y = block_sparse_matmul(as_tf(x, tf.float32), as_tf(w, tf.float32), m, 3)
        np.testing.assert_allclose(y.numpy(), reference(x, w, mask, 3), **TOL[tf.float32])


def test_inactive_blocks_are_exact_zeros_even_with_inf(impl):
    x = np.array([[np.inf, 1.0], [1.0, 2.0]], np.float32)
    w = np.ones((2, 4), np.float32)
    y = block_sparse_matmul(x, w, [[False, False], [True, False]], 2).numpy()
    np.testing.assert_array_equal(y, [[0, 0, 0, 0], [3, 3, 0, 0]])


@pytest.mark.parametrize(
    "batch, k, n, block_size", [(0, 5, 8, 4), (3, 0, 8, 4), (3, 5, 0, 4), (0, 0, 0, 1)]
)
def test_empty_dimensions(impl, batch, k, n, block_size):
    x = tf.ones([batch, k])
    w = tf.ones([k, n])
    mask = tf.ones([batch, n // block_size], tf.bool)
    with tf.GradientTape() as tape:
        tape.watch([x, w])
        y = block_sparse_matmul(x, w, mask, block_size)
    assert y.shape == (batch, n)
    np.testing.assert_array_equal(y.numpy(), np.zeros((batch, n)))
    dx, dw = tape.gradient(y, [x, w], output_gradients=tf.ones([batch, n]))
    np.testing.assert_array_equal(dx.numpy(), np.zeros((batch, k)))
    np.testing.assert_array_equal(dw.numpy(), np.zeros((k, n)))


def test_inside_tf_function_with_unknown_batch(impl):
    rng = np.random.default_rng(9)
    x, w, mask = make_inputs(rng, 5, 4, 8, 4, 0.5)
    fn = tf.function(
        lambda a, m: block_sparse_matmul(a, tf.constant(w, tf.float32), m, 4),
        input_signature=[tf.TensorSpec([None, 4]), tf.TensorSpec([None, 2], tf.bool)],
    )
    np.testing.assert_allclose(fn(x.astype(np.float32), mask).numpy(), reference(x, w, mask, 4), **TOL[tf.float32])


BAD_ARGS = [
    (dict(x=np.ones((2, 3, 1), np.float32)), "`x`"),
    (dict(w=np.ones(3, np.float32)), "`w`"),
    (dict(w=np.ones((4, 4), np.float32)), "`w`"),
    (dict(w=np.ones((3, 5), np.float32)), "`block_size`"),
    (dict(mask=np.ones((2, 3), bool)), "`mask`"),
    (dict(mask=np.ones((3, 2), bool)), "`mask`"),
    (dict(mask=np.ones(2, bool)), "`mask`"),
    (dict(mask=np.array([["a", "b"], ["c", "d"]])), "`mask`"),
    (dict(block_size=0), "`block_size`"),
    (dict(block_size=-2), "`block_size`"),
    (dict(block_size=1.5), "`block_size`"),
    (dict(block_size=True), "`block_size`"),
    (dict(x=np.ones((2, 3), np.int32)), "`x`"),
    (dict(w=np.ones((3, 4), np.float64)), "`w`"),
    (dict(x="text"), "`x`"),
]


@pytest.mark.parametrize("bad, name", BAD_ARGS)
def test_bad_arguments_raise_value_error_naming_them(impl, bad, name):
    args = dict(x=np.ones((2, 3), np.float32), w=np.ones((3, 4), np.float32),
                mask=np.ones((2, 2), bool), block_size=2)
    args.update(bad)
    with pytest.raises(ValueError, match=name):
        block_sparse_matmul(**args)


KERNEL_BAD = [
    # (op, inputs, block_size, name in the message)
    ("block_sparse_matmul", [(2, 3), (4, 4), (2, 2)], 2, "`w`"),
    ("block_sparse_matmul", [(2, 3), (3, 5), (2, 2)], 2, "block_size"),
    ("block_sparse_matmul", [(2, 3), (3, 4), (2, 3)], 2, "`mask`"),
    ("block_sparse_matmul", [(2, 3), (3, 4), (3, 2)], 2, "`mask`"),
    ("block_sparse_matmul", [(2, 3, 1), (3, 4), (2, 2)], 2, "`x`"),
    ("block_sparse_matmul_grad_x", [(2, 4), (3, 5), (2, 2)], 2, "`w`"),
    ("block_sparse_matmul_grad_x", [(2, 4), (3, 4), (2, 1)], 2, "`mask`"),
    ("block_sparse_matmul_grad_w", [(2, 3), (3, 4), (2, 2)], 2, "`dy`"),
    ("block_sparse_matmul_grad_w", [(2, 3), (2, 4), (2, 4)], 2, "`mask`"),
    ("block_sparse_matmul_grad_w", [(2, 3), (2, 4), (2, 4)], 3, "block_size"),
]


@pytest.mark.parametrize("op, shapes, block_size, name", KERNEL_BAD)
def test_kernels_validate_their_inputs(op, shapes, block_size, name):
    """Shapes known only at run time reach the kernels' OP_REQUIRES checks."""
    lib = _lib.op_library()
    if lib is None:
        pytest.fail(f"op library not loaded: {_lib.fallback_reason()}", pytrace=False)
    specs = [tf.TensorSpec(None, tf.float32), tf.TensorSpec(None, tf.float32), tf.TensorSpec(None, tf.bool)]
    fn = tf.function(lambda a, b, m: getattr(lib, op)(a, b, m, block_size=block_size), input_signature=specs)
    args = [tf.ones(shapes[0]), tf.ones(shapes[1]), tf.ones(shapes[2], tf.bool)]
    with pytest.raises(tf.errors.InvalidArgumentError, match=name):
        fn(*args)


def test_kernel_rejects_bad_block_size_attr():
    lib = _lib.op_library()
    if lib is None:
        pytest.fail(f"op library not loaded: {_lib.fallback_reason()}", pytrace=False)
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="block_size"):
        lib.block_sparse_matmul(tf.ones([2, 3]), tf.ones([3, 4]), tf.ones([2, 4], tf.bool), block_size=0)


def test_compiled_and_pure_tf_agree_on_larger_problem():
    lib = _lib.op_library()
    if lib is None:
        pytest.fail(f"op library not loaded: {_lib.fallback_reason()}", pytrace=False)
    rng = np.random.default_rng(0)
    x, w, mask = make_inputs(rng, 64, 96, 256, 32, 0.3)
    args = (tf.constant(x, tf.float32), tf.constant(w, tf.float32), mask, 32)
    compiled = block_sparse_matmul(*args)
    with pure_tf():
        fallback = block_sparse_matmul(*args)
    np.testing.assert_allclose(compiled.numpy(), fallback.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
@pytest.mark.parametrize("block_size", [16, 24, 48, 64, 72, 80])
@pytest.mark.parametrize("density", [0.05, 0.3, 1.0])
def test_tiled_kernel_paths(impl, dtype, block_size, density):
    """Shapes that reach every path of the CPU micro-kernels.

    K = 600 spans several k chunks (the partial sums are reloaded), batch 40
    gives blocks with 0 to 40 active rows (one or several row tiles, 1 to 12
    rows each), and the block sizes mix column tiles of 4, 2 and 1 vectors
    with scalar tails, in float32 (16 lanes) and float64 (8 lanes).
    """
    rng = np.random.default_rng(block_size + int(100 * density))
    x, w, mask = make_inputs(rng, 40, 600, 3 * block_size, block_size, density, dtype)
    y = block_sparse_matmul(as_tf(x, dtype), as_tf(w, dtype), mask, block_size)
    tol = TOL[dtype] if dtype == tf.float64 else dict(rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(y.numpy(), reference(x, w, mask, block_size), **tol)


def uneven_mask(rng, batch, blocks, kind):
    """Masks whose blocks carry very different amounts of work."""
    if kind == "graded":  # block j active with probability j / blocks
        return rng.random((batch, blocks)) < (np.arange(blocks) + 0.5) / blocks
    mask = np.zeros((batch, blocks), bool)
    if kind == "one_block":  # all the work in one block in the middle
        mask[:, blocks // 2] = True
    elif kind == "ends":  # all the work in the first and the last block
        mask[:, [0, blocks - 1]] = rng.random((batch, 2)) < 0.8
    return mask


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
@pytest.mark.parametrize("kind", ["graded", "one_block", "ends"])
def test_forward_split_over_threads(impl, dtype, kind):
    """Large enough for the forward to be split into ranges of equal work that
    several threads take in turn; the masks make ranges of very different
    numbers of blocks, some of them empty. K = 700 is not a whole number of k
    chunks."""
    rng = np.random.default_rng(["graded", "one_block", "ends"].index(kind))
    x, w, _ = make_inputs(rng, 64, 700, 1024, 32, 1.0, dtype)
    mask = uneven_mask(rng, 64, 32, kind)
    y = block_sparse_matmul(as_tf(x, dtype), as_tf(w, dtype), mask, 32)
    tol = TOL[dtype] if dtype == tf.float64 else dict(rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(y.numpy(), reference(x, w, mask, 32), **tol)


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
@pytest.mark.parametrize("block_size", [1, 16, 20, 32])
def test_runs_of_blocks_with_the_same_rows(impl, dtype, block_size):
    """Adjacent blocks whose active rows are the same are computed as one
    wider block. The mask has runs of 1 to 5 blocks sharing a column of the
    mask (few rows, many, all, none), runs ended by a block with as many
    active rows but one of them moved (or, all or none active, one row
    flipped), and runs split over the threads' ranges."""
    rng = np.random.default_rng(block_size)
    columns = []
    for run in [3, 1, 5, 2, 1, 4, 2, 3, 1, 2, 5, 3]:
        column = rng.random(48) < rng.choice([0.1, 0.5, 1.0, 0.0])
        columns += [column] * run
        if run > 2:  # the run's last block differs in one row
            moved = column.copy()
            if 0 < column.sum() < 48:
                moved[rng.choice(np.flatnonzero(column))] = False
                moved[rng.choice(np.flatnonzero(~column))] = True
            else:
                moved[rng.integers(48)] ^= True
            columns[-1] = moved
    mask = np.stack(columns, axis=1)
    x, w, _ = make_inputs(rng, 48, 300, mask.shape[1] * block_size, block_size, 1.0, dtype)
    y = block_sparse_matmul(as_tf(x, dtype), as_tf(w, dtype), mask, block_size)
    tol = TOL[dtype] if dtype == tf.float64 else dict(rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(y.numpy(), reference(x, w, mask, block_size), **tol)


@pytest.mark.parametrize("dtype, block_size", [(tf.float32, 32), (tf.float64, 16)])
@pytest.mark.parametrize("k", [7, 300])
def test_adjacent_blocks_with_few_rows(impl, dtype, block_size, k):
    """Blocks of two vectors (32 float32, 16 float64) whose neighbour is active
    and whose active rows together are at most 12 are computed in one tile.
    The row counts per block make pairs of 1 + 11, 6 + 6, 5 + 7 rows, pairs
    one row too many (6 + 7, 12 + 1), and blocks next to inactive ones."""
    counts = [1, 11, 6, 6, 5, 7, 0, 3, 6, 7, 12, 1, 0, 2, 9, 4, 13, 0, 1, 1]
    rng = np.random.default_rng(k + block_size)
    x, w, _ = make_inputs(rng, 24, k, len(counts) * block_size, block_size, 1.0, dtype)
    mask = np.zeros((24, len(counts)), bool)
    for j, c in enumerate(counts):
        mask[rng.choice(24, c, replace=False), j] = True
    y = block_sparse_matmul(as_tf(x, dtype), as_tf(w, dtype), mask, block_size)
    tol = TOL[dtype] if dtype == tf.float64 else dict(rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(y.numpy(), reference(x, w, mask, block_size), **tol)


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
@pytest.mark.parametrize(
    "batch, k, n, block_size",
    [
        (2048, 1024, 1, 1),  # the unstructured gating's U^T h^T at batch 1
        (2048, 1024, 3, 1),  # ... at batch 3
        (1500, 700, 40, 40),  # one block: whole vectors and a narrow rest
        (1000, 130, 64, 32),  # two blocks, fewer than the threads' ranges
    ],
)
@pytest.mark.parametrize("density", [0.0, 0.1, 0.5, 1.0])
def test_few_blocks_split_over_rows(impl, dtype, batch, k, n, block_size, density):
    """Tall products with fewer blocks than the threads' ranges are split over
    the rows instead; narrow blocks take dot products along k, 8 rows at a
    time (2048 and 1500 rows are not all whole tiles of active rows)."""
    rng = np.random.default_rng(batch + n + int(10 * density))
    x, w, mask = make_inputs(rng, batch, k, n, block_size, density, dtype)
    y = block_sparse_matmul(as_tf(x, dtype), as_tf(w, dtype), mask, block_size)
    tol = TOL[dtype] if dtype == tf.float64 else dict(rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(y.numpy(), reference(x, w, mask, block_size), **tol)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_few_blocks_split_over_rows_half_precision(impl, dtype):
    """The row split of the half-precision path (float tiles for Eigen)."""
    rng = np.random.default_rng(3)
    x, w, mask = make_inputs(rng, 1200, 600, 2, 1, 0.5, dtype)
    y = block_sparse_matmul(as_tf(x, dtype), as_tf(w, dtype), mask, 1)
    np.testing.assert_allclose(
        tf.cast(y, tf.float64).numpy(), reference(x, w, mask, 1), **TOL[dtype]
    )
