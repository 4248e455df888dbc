"""`band_matmul` and `band_outer` against dense float64 NumPy references.

Every test runs twice through the `impl` fixture (tests/conftest.py): with the
compiled kernels and inside `keras_bandrnn.ops.pure_tf()`.
"""

import numpy as np
import pytest
import tensorflow as tf

from keras_bandrnn import ops
from tests import references as ref
from tests.ops.helpers import BANDS
from tests.ops.helpers import band_id
from tests.ops.helpers import numpy64
from tests.ops.helpers import random
from tests.ops.helpers import rng

DTYPES = ["float64", "float32", "bfloat16", "float16"]


def batch_for(n):
    return (3,) if n <= 300 else (2,)


def _inputs(key, n, lower, upper, batch, dtype="float64"):
    gen = rng(*key)
    x, x64 = random(gen, batch + (n,), dtype)
    d, d64 = random(gen, (n, lower + upper + 1), dtype)
    w, w64 = random(gen, batch + (n,), dtype)
    return (x, x64), (d, d64), (w, w64)


def matmul_grads_ref(x64, d64, w64, lower, upper, cyclic, transpose):
    """d/dx and d/ddiags of sum(w * band_matmul(x, diags)), analytically."""
    n = x64.shape[-1]
    a = ref.dense(d64, lower, upper, cyclic)
    rows = int(np.prod(x64.shape[:-1]))
    x2, w2 = x64.reshape(rows, n), w64.reshape(rows, n)
    if not transpose:  # y = x A^T: dx = w A, dA = w^T x
        dx, da = w64 @ a, w2.T @ x2
        mag_dx, mag_da = np.abs(w64) @ np.abs(a), np.abs(w2).T @ np.abs(x2)
    else:  # y = x A: dx = w A^T, dA = x^T w
        dx, da = w64 @ a.T, x2.T @ w2
        mag_dx, mag_da = np.abs(w64) @ np.abs(a).T, np.abs(x2).T @ np.abs(w2)
    return (
        (dx, mag_dx),
        (ref.to_diags(da, lower, upper, cyclic), ref.to_diags(mag_da, lower, upper, cyclic)),
    )


def outer_grads_ref(a64, b64, u64, lower, upper, cyclic):
    """d/da and d/db of sum(u * band_outer(a, b)): b U^T and a U, U = dense(u)."""
    u = ref.dense(u64, lower, upper, cyclic)
    return (b64 @ u.T, np.abs(b64) @ np.abs(u).T), (a64 @ u, np.abs(a64) @ np.abs(u))


# --------------------------------------------------------------------------
# The reference itself


def test_reference_matches_literal_formula():
    for n, lower, upper, cyclic in BANDS[:14]:
        gen = rng("literal", n, lower, upper, cyclic)
        x = gen.standard_normal((2, n))
        d = gen.standard_normal((n, lower + upper + 1))
        np.testing.assert_allclose(
            ref.band_matmul(x, d, lower, upper, cyclic),
            ref.band_matmul_loops(x, d, lower, upper, cyclic),
            rtol=1e-12, atol=1e-12,
        )


# --------------------------------------------------------------------------
# Values


@pytest.mark.parametrize("transpose", [False, True], ids=["xAT", "xA"])
@pytest.mark.parametrize("band", BANDS, ids=band_id)
def test_band_matmul_values(impl, band, transpose):
    n, lower, upper, cyclic = band
    (x, x64), (d, d64), _ = _inputs(("mm", band), n, lower, upper, batch_for(n))
    y = ops.band_matmul(x, d, lower, upper, cyclic=cyclic, transpose=transpose)
    assert y.shape == x.shape and y.dtype == tf.float64
    ref.assert_close(
        numpy64(y),
        ref.band_matmul(x64, d64, lower, upper, cyclic, transpose),
        ref.magnitude_matmul(x64, d64, lower, upper, cyclic, transpose),
        "float64",
    )


@pytest.mark.parametrize("band", BANDS, ids=band_id)
def test_band_outer_values(impl, band):
    n, lower, upper, cyclic = band
    (a, a64), _, (b, b64) = _inputs(("outer", band), n, lower, upper, batch_for(n))
    g = ops.band_outer(a, b, lower, upper, cyclic=cyclic)
    assert g.shape == (n, lower + upper + 1) and g.dtype == tf.float64
    ref.assert_close(
        numpy64(g),
        ref.band_outer(a64, b64, lower, upper, cyclic),
        ref.magnitude_outer(a64, b64, lower, upper, cyclic),
        "float64",
    )
    pad = ref.padding_mask(n, lower, upper, cyclic)
    assert (numpy64(g)[pad] == 0).all(), "padding entries of band_outer must be exactly 0"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "band", [(1, 0, 0, False), (9, 2, 5, False), (12, 4, 7, True), (40, 39, 0, False), (700, 12, 3, True)],
    ids=band_id,
)
def test_dtypes(impl, band, dtype):
    n, lower, upper, cyclic = band
    (x, x64), (d, d64), (w, w64) = _inputs(("dtype", band, dtype), n, lower, upper, (4,), dtype)
    for transpose in (False, True):
        y = ops.band_matmul(x, d, lower, upper, cyclic=cyclic, transpose=transpose)
        assert y.dtype == dtype
        ref.assert_close(
            numpy64(y),
            ref.band_matmul(x64, d64, lower, upper, cyclic, transpose),
            ref.magnitude_matmul(x64, d64, lower, upper, cyclic, transpose),
            dtype, what=f"band_matmul transpose={transpose}",
        )
    g = ops.band_outer(x, w, lower, upper, cyclic=cyclic)
    assert g.dtype == dtype
    ref.assert_close(
        numpy64(g), ref.band_outer(x64, w64, lower, upper, cyclic),
        ref.magnitude_outer(x64, w64, lower, upper, cyclic), dtype, what="band_outer",
    )


def test_half_types_accumulate_in_float32(impl):
    """A sum whose terms cancel in float16/bfloat16 but not in float32."""
    n, lower, upper = 4, 0, 3
    d = np.zeros((n, 4))
    d[0] = [1.0, 1.0, 1.0, 0.0]  # y[0] = x0 + x1 + x2
    x = np.array([[4096.0, 1.0, -4096.0, 0.0]])  # 4096 + 1 rounds to 4096 in half types
    for dtype in ("bfloat16", "float16"):
        y = ops.band_matmul(tf.cast(x, dtype), tf.cast(d, dtype), lower, upper)
        assert numpy64(y)[0, 0] == 1.0, dtype
        g = ops.band_outer(tf.cast([[1.0], [1.0], [1.0]], dtype) * tf.ones([3, n], dtype),
                           tf.cast([[4096.0], [1.0], [-4096.0]], dtype) * tf.ones([3, n], dtype),
                           lower, upper)
        assert numpy64(g)[0, 0] == 1.0, dtype


# Larger batches: implementations may switch to other code paths (blocked,
# batch-minor, register-tiled kernels) from a batch of some rows upward.
LARGE_BATCH_BANDS = [
    (1, 0, 0, False),
    (5, 2, 2, True),
    (7, 3, 1, False),
    (40, 39, 39, False),
    (193, 5, 2, True),
    (200, 0, 30, False),
    (385, 100, 3, False),
    (450, 7, 8, True),
]


@pytest.mark.parametrize(
    "dtype, batch",
    [("float64", (8,)), ("float32", (16,)), ("float32", (2, 33)), ("bfloat16", (17,)), ("float16", (2, 33))],
    ids=lambda v: v if isinstance(v, str) else "batch" + "x".join(map(str, v)),
)
@pytest.mark.parametrize("band", LARGE_BATCH_BANDS, ids=band_id)
def test_large_batches(impl, band, dtype, batch):
    """Values and gradients of both products with many rows."""
    n, lower, upper, cyclic = band
    (x, x64), (d, d64), (w, w64) = _inputs(("large", band, dtype, batch), n, lower, upper, batch, dtype)
    for transpose in (False, True):
        with tf.GradientTape() as tape:
            tape.watch([x, d])
            y = ops.band_matmul(x, d, lower, upper, cyclic=cyclic, transpose=transpose)
            loss = tf.reduce_sum(w * y)
        ref.assert_close(
            numpy64(y), ref.band_matmul(x64, d64, lower, upper, cyclic, transpose),
            ref.magnitude_matmul(x64, d64, lower, upper, cyclic, transpose), dtype,
            what=f"band_matmul transpose={transpose}",
        )
        dx, dd = tape.gradient(loss, [x, d])
        (dx_ref, mag_dx), (dd_ref, mag_dd) = matmul_grads_ref(x64, d64, w64, lower, upper, cyclic, transpose)
        ref.assert_close(numpy64(dx), dx_ref, mag_dx, dtype, what=f"d/dx transpose={transpose}")
        ref.assert_close(numpy64(dd), dd_ref, mag_dd, dtype, what=f"d/ddiags transpose={transpose}")


# Edge paths of the blocked CPU kernel (custom_ops/cpu/band_cpu.h): tiles of
# 16 float32 (8 float64) output columns handled in pairs (an odd tile count
# leaves one alone), n not a multiple of the tile, batch rows in groups of 8
# with a remainder, more than one 64-row batch block, more than one 32-tile
# buffer chunk, work split over two threads (n = 1000 with k = 65), interior
# tiles packed by vector loads next to padded edge tiles, narrow bands
# (k < 16) whose last rows the packing must not read past, and cyclic bands
# with k close to n.
BLOCKED_CASES = [
    # (n, lower, upper, cyclic, batch)
    (16, 3, 4, False, 8),       # one full tile, batch exactly 8
    (31, 2, 2, True, 9),        # one full and one partial tile
    (48, 5, 7, False, 15),      # three tiles: a pair and one alone
    (200, 2, 1, False, 8),      # k = 4: interior tiles and the last rows of diags
    (200, 0, 0, True, 13),      # k = 1
    (130, 64, 64, True, 10),    # cyclic, k = 129 close to n
    (70, 30, 39, True, 12),     # cyclic, k == n
    (97, 40, 56, False, 11),    # open, k == n, every tile padded
    (600, 16, 15, True, 130),   # batch blocks of 64 (+ 2 rows), two chunks
    (1000, 32, 32, False, 64),  # the benchmark's band, split over threads
    (1000, 32, 32, True, 67),
    (1537, 7, 50, False, 24),   # asymmetric, odd tile count over chunks
]


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
@pytest.mark.parametrize("case", BLOCKED_CASES, ids=lambda c: "n{}-l{}-u{}-{}-b{}".format(
    c[0], c[1], c[2], "cyc" if c[3] else "open", c[4]))
def test_blocked_kernel_edges(impl, case, dtype):
    """Both products of the blocked (batch >= 8) kernel against float64."""
    n, lower, upper, cyclic, batch = case
    (x, x64), (d, d64), _ = _inputs(("blocked", case, dtype), n, lower, upper, (batch,), dtype)
    for transpose in (False, True):
        y = ops.band_matmul(x, d, lower, upper, cyclic=cyclic, transpose=transpose)
        ref.assert_close(
            numpy64(y), ref.band_matmul(x64, d64, lower, upper, cyclic, transpose),
            ref.magnitude_matmul(x64, d64, lower, upper, cyclic, transpose), dtype,
            what=f"band_matmul transpose={transpose}",
        )


@pytest.mark.parametrize("case", [(6500, 32, 32, False, 7), (7001, 3, 60, True, 7), (3000, 32, 32, True, 64)],
                         ids=["n6500-b7", "n7001-cyc-b7", "n3000-cyc-b64"])
def test_work_split_over_threads(impl, case):
    """Sizes large enough for the CPU kernels to split the work over threads:
    the small-batch products and band_outer."""
    n, lower, upper, cyclic, batch = case
    (x, x64), (d, d64), (w, w64) = _inputs(("split", case), n, lower, upper, (batch,), "float32")
    for transpose in (False, True):
        y = ops.band_matmul(x, d, lower, upper, cyclic=cyclic, transpose=transpose)
        ref.assert_close(
            numpy64(y), ref.band_matmul(x64, d64, lower, upper, cyclic, transpose),
            ref.magnitude_matmul(x64, d64, lower, upper, cyclic, transpose), "float32",
            what=f"band_matmul transpose={transpose}",
        )
    g = ops.band_outer(x, w, lower, upper, cyclic=cyclic)
    ref.assert_close(
        numpy64(g), ref.band_outer(x64, w64, lower, upper, cyclic),
        ref.magnitude_outer(x64, w64, lower, upper, cyclic), "float32", what="band_outer",
    )


@pytest.mark.parametrize("cyclic", [False, True], ids=["open", "cyc"])
def test_scratch_larger_than_a_thread_keeps(impl, cyclic):
    """Per-thread scratch above the 4 MB a thread keeps between calls (batch 3
    of n = 2**19 extends x into 6 MB) is freed after the call: the products
    are right, and so are the smaller ones that reuse the threads' scratch
    after it (small and blocked batches, in turn)."""
    import scipy.sparse

    lower, upper = 2, 1
    for n, batch in ((2**19, 3), (300, 3), (2**19, 3), (300, 70), (2**19, 2)):
        (x, x64), (d, d64), _ = _inputs(("scratch", n, batch, cyclic), n, lower, upper, (batch,), "float32")
        rows, slots, cols = ref.band_index(n, lower, upper, cyclic)
        a = scipy.sparse.csr_matrix((d64[rows, slots], (rows, cols)), shape=(n, n))
        for transpose in (False, True):
            op = a.T if transpose else a
            y = ops.band_matmul(x, d, lower, upper, cyclic=cyclic, transpose=transpose)
            ref.assert_close(numpy64(y), (op @ x64.T).T, (abs(op) @ np.abs(x64).T).T, "float32",
                             what=f"n={n} batch={batch} transpose={transpose}")


@pytest.mark.parametrize(
    "batch", [(), (3,), (2, 3), (2, 1, 3), (0,), (2, 0), (0, 3, 2)],
    ids=lambda b: "batch" + "x".join(map(str, b)) if b else "unbatched",
)
@pytest.mark.parametrize("band", [(6, 2, 1, False), (5, 1, 3, True), (20, 19, 0, False)], ids=band_id)
def test_leading_dims(impl, band, batch):
    n, lower, upper, cyclic = band
    (x, x64), (d, d64), (w, w64) = _inputs(("lead", band, batch), n, lower, upper, batch)
    for transpose in (False, True):
        y = ops.band_matmul(x, d, lower, upper, cyclic=cyclic, transpose=transpose)
        assert y.shape == batch + (n,)
        ref.assert_close(
            numpy64(y), ref.band_matmul(x64, d64, lower, upper, cyclic, transpose),
            ref.magnitude_matmul(x64, d64, lower, upper, cyclic, transpose), "float64",
        )
    g = ops.band_outer(x, w, lower, upper, cyclic=cyclic)
    assert g.shape == (n, lower + upper + 1)
    want = ref.band_outer(x64, w64, lower, upper, cyclic)
    if 0 in batch:
        assert not want.any()
        assert (numpy64(g) == 0).all(), "an empty batch gives an all-zero band_outer"
    ref.assert_close(numpy64(g), want, ref.magnitude_outer(x64, w64, lower, upper, cyclic), "float64")


@pytest.mark.parametrize("cyclic", [False, True])
def test_empty_batch_gradients(impl, cyclic):
    n, lower, upper = 5, 1, 2
    x = tf.zeros([0, n], tf.float64)
    d = tf.constant(rng("empty").standard_normal((n, 4)))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, d])
        y = ops.band_matmul(x, d, lower, upper, cyclic=cyclic)
        g = ops.band_outer(x, x, lower, upper, cyclic=cyclic)
        loss = tf.reduce_sum(y) + tf.reduce_sum(g * d)
    dx, dd = tape.gradient(loss, [x, d])
    assert dx.shape == (0, n)
    assert dd is None or (numpy64(dd) == 0).all()


# --------------------------------------------------------------------------
# Padding of an open band never contributes


@pytest.mark.parametrize("batch", [(3,), (20,)], ids=["batch3", "batch20"])
@pytest.mark.parametrize("fill", [np.nan, -1e30], ids=["nan", "huge"])
@pytest.mark.parametrize("transpose", [False, True], ids=["xAT", "xA"])
@pytest.mark.parametrize(
    "band", [(1, 2, 3, False), (6, 2, 1, False), (5, 0, 4, False), (17, 3, 5, False), (40, 39, 39, False)],
    ids=band_id,
)
def test_padding_never_contributes(impl, band, transpose, fill, batch):
    n, lower, upper, cyclic = band
    pad = ref.padding_mask(n, lower, upper, cyclic)
    assert pad.any()
    (x, x64), (d, d64), (w, w64) = _inputs(("pad", band, batch), n, lower, upper, batch)
    d64 = np.where(pad, fill, d64)
    d = tf.constant(d64)
    clean = np.where(pad, 0.0, d64)
    with tf.GradientTape() as tape:
        tape.watch([x, d])
        y = ops.band_matmul(x, d, lower, upper, cyclic=cyclic, transpose=transpose)
        loss = tf.reduce_sum(w * y)
    ref.assert_close(
        numpy64(y), ref.band_matmul(x64, clean, lower, upper, cyclic, transpose),
        ref.magnitude_matmul(x64, clean, lower, upper, cyclic, transpose), "float64",
    )
    dx, dd = tape.gradient(loss, [x, d])
    (dx_ref, mag_dx), (dd_ref, mag_dd) = matmul_grads_ref(x64, clean, w64, lower, upper, cyclic, transpose)
    ref.assert_close(numpy64(dx), dx_ref, mag_dx, "float64", what="d/dx")
    dd = numpy64(dd)
    assert (dd[pad] == 0).all(), "the gradient of a padding entry must be exactly 0"
    ref.assert_close(dd, dd_ref, mag_dd, "float64", what="d/ddiags")


@pytest.mark.parametrize("fill", [np.nan, 1e30], ids=["nan", "huge"])
def test_padding_gradient_of_band_outer_inputs(impl, fill):
    """An upstream gradient with NaN at padding entries must not reach a or b."""
    n, lower, upper = 7, 3, 2
    pad = ref.padding_mask(n, lower, upper)
    gen = rng("outer-pad")
    a = tf.constant(gen.standard_normal((4, n)))
    b = tf.constant(gen.standard_normal((4, n)))
    u64 = np.where(pad, fill, gen.standard_normal((n, lower + upper + 1)))
    with tf.GradientTape() as tape:
        tape.watch([a, b])
        g = ops.band_outer(a, b, lower, upper)
    da, db = tape.gradient(g, [a, b], output_gradients=tf.constant(u64))
    clean = np.where(pad, 0.0, u64)
    (da_ref, mag_a), (db_ref, mag_b) = outer_grads_ref(numpy64(a), numpy64(b), clean, lower, upper, False)
    ref.assert_close(numpy64(da), da_ref, mag_a, "float64", what="d/da")
    ref.assert_close(numpy64(db), db_ref, mag_b, "float64", what="d/db")


# --------------------------------------------------------------------------
# Gradients


GRAD_BANDS = [b for b in BANDS if b[0] <= 300] + [(2500, 3, 3, False)]


@pytest.mark.parametrize("transpose", [False, True], ids=["xAT", "xA"])
@pytest.mark.parametrize("band", GRAD_BANDS, ids=band_id)
def test_band_matmul_gradients(impl, band, transpose):
    n, lower, upper, cyclic = band
    (x, x64), (d, d64), (w, w64) = _inputs(("mmgrad", band), n, lower, upper, (2, 2))
    with tf.GradientTape() as tape:
        tape.watch([x, d])
        loss = tf.reduce_sum(w * ops.band_matmul(x, d, lower, upper, cyclic=cyclic, transpose=transpose))
    dx, dd = tape.gradient(loss, [x, d])
    (dx_ref, mag_dx), (dd_ref, mag_dd) = matmul_grads_ref(x64, d64, w64, lower, upper, cyclic, transpose)
    ref.assert_close(numpy64(dx), dx_ref, mag_dx, "float64", what="d/dx")
    ref.assert_close(numpy64(dd), dd_ref, mag_dd, "float64", what="d/ddiags")
    assert (numpy64(dd)[ref.padding_mask(n, lower, upper, cyclic)] == 0).all()


@pytest.mark.parametrize("band", GRAD_BANDS, ids=band_id)
def test_band_outer_gradients(impl, band):
    n, lower, upper, cyclic = band
    (a, a64), (u, u64), (b, b64) = _inputs(("outgrad", band), n, lower, upper, (3, 1))
    with tf.GradientTape() as tape:
        tape.watch([a, b])
        loss = tf.reduce_sum(u * ops.band_outer(a, b, lower, upper, cyclic=cyclic))
    da, db = tape.gradient(loss, [a, b])
    (da_ref, mag_a), (db_ref, mag_b) = outer_grads_ref(a64, b64, u64, lower, upper, cyclic)
    ref.assert_close(numpy64(da), da_ref, mag_a, "float64", what="d/da")
    ref.assert_close(numpy64(db), db_ref, mag_b, "float64", what="d/db")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("band", [(9, 2, 5, False), (12, 4, 7, True)], ids=band_id)
def test_gradients_in_low_precision(impl, band, dtype):
    n, lower, upper, cyclic = band
    (x, x64), (d, d64), (w, w64) = _inputs(("lpgrad", band, dtype), n, lower, upper, (5,), dtype)
    for transpose in (False, True):
        with tf.GradientTape() as tape:
            tape.watch([x, d])
            loss = tf.reduce_sum(w * ops.band_matmul(x, d, lower, upper, cyclic=cyclic, transpose=transpose))
        dx, dd = tape.gradient(loss, [x, d])
        assert dx.dtype == dtype and dd.dtype == dtype
        (dx_ref, mag_dx), (dd_ref, mag_dd) = matmul_grads_ref(x64, d64, w64, lower, upper, cyclic, transpose)
        ref.assert_close(numpy64(dx), dx_ref, mag_dx, dtype, what="d/dx")
        ref.assert_close(numpy64(dd), dd_ref, mag_dd, dtype, what="d/ddiags")
    u, u64 = d, d64
    with tf.GradientTape() as tape:
        tape.watch([x, w])
        loss = tf.reduce_sum(u * ops.band_outer(x, w, lower, upper, cyclic=cyclic))
    da, db = tape.gradient(loss, [x, w])
    (da_ref, mag_a), (db_ref, mag_b) = outer_grads_ref(x64, w64, u64, lower, upper, cyclic)
    ref.assert_close(numpy64(da), da_ref, mag_a, dtype, what="d/da")
    ref.assert_close(numpy64(db), db_ref, mag_b, dtype, what="d/db")


@pytest.mark.parametrize("transpose", [False, True], ids=["xAT", "xA"])
@pytest.mark.parametrize(
    "band", [(1, 0, 0, True), (6, 2, 1, False), (5, 0, 4, False), (7, 1, 5, True), (40, 5, 30, False)],
    ids=band_id,
)
def test_band_matmul_second_derivatives(impl, band, transpose):
    """Gradients of the first-order gradients, against their dense forms.

    L = sum(w * band_matmul(x, diags)); s = sum(v * dL/dx) + sum(u * dL/ddiags)
    is differentiated again w.r.t. x, diags and w (formulas per case below).
    """
    n, lower, upper, cyclic = band
    (x, x64), (d, d64), (w, w64) = _inputs(("second", band), n, lower, upper, (3,))
    gen = rng("second-v", band)
    v64 = gen.standard_normal((3, n))
    u64 = gen.standard_normal((n, lower + upper + 1))
    v, u = tf.constant(v64), tf.constant(u64)
    with tf.GradientTape() as outer:
        outer.watch([x, d, w])
        with tf.GradientTape() as inner:
            inner.watch([x, d])
            loss = tf.reduce_sum(w * ops.band_matmul(x, d, lower, upper, cyclic=cyclic, transpose=transpose))
        dx, dd = inner.gradient(loss, [x, d])
        s = tf.reduce_sum(v * dx) + tf.reduce_sum(u * dd)
    sx, sd, sw = outer.gradient(s, [x, d, w])

    a = ref.dense(d64, lower, upper, cyclic)
    um = ref.dense(u64, lower, upper, cyclic)  # dd only has band entries: padding of u is dropped
    if not transpose:
        # dx = w A, dA = w^T x  =>  s = sum(v * (w A)) + sum(U * (w^T x))
        sx_ref = w64 @ um
        sw_ref = v64 @ a.T + x64 @ um.T
        sd_ref = ref.to_diags(w64.T @ v64, lower, upper, cyclic)
    else:
        # dx = w A^T, dA = x^T w  =>  s = sum(v * (w A^T)) + sum(U * (x^T w))
        sx_ref = w64 @ um.T
        sw_ref = v64 @ a + x64 @ um
        sd_ref = ref.to_diags(v64.T @ w64, lower, upper, cyclic)
    scale = 1.0 + n
    ref.assert_close(numpy64(sx), sx_ref, scale, "float64", what="d2/dx")
    ref.assert_close(numpy64(sw), sw_ref, scale, "float64", what="d2/dw")
    ref.assert_close(numpy64(sd), sd_ref, scale, "float64", what="d2/ddiags")
    assert (numpy64(sd)[ref.padding_mask(n, lower, upper, cyclic)] == 0).all()


@pytest.mark.parametrize("band", [(6, 2, 1, False), (7, 1, 5, True)], ids=band_id)
def test_band_outer_second_derivatives(impl, band):
    """s = sum(p * dL/da) + sum(q * dL/db) for L = sum(u * band_outer(a, b))."""
    n, lower, upper, cyclic = band
    (a, a64), (u, u64), (b, b64) = _inputs(("outer2", band), n, lower, upper, (4,))
    gen = rng("outer2-pq", band)
    p64, q64 = gen.standard_normal((4, n)), gen.standard_normal((4, n))
    with tf.GradientTape() as outer:
        outer.watch([a, b, u])
        with tf.GradientTape() as inner:
            inner.watch([a, b])
            loss = tf.reduce_sum(u * ops.band_outer(a, b, lower, upper, cyclic=cyclic))
        da, db = inner.gradient(loss, [a, b])  # b U^T, a U
        s = tf.reduce_sum(p64 * da) + tf.reduce_sum(q64 * db)
    sa, sb, su = outer.gradient(s, [a, b, u])
    um = ref.dense(u64, lower, upper, cyclic)
    scale = 1.0 + n
    ref.assert_close(numpy64(sa), q64 @ um.T, scale, "float64", what="d2/da")
    ref.assert_close(numpy64(sb), p64 @ um, scale, "float64", what="d2/db")
    su_ref = ref.to_diags(p64.T @ b64 + a64.T @ q64, lower, upper, cyclic)
    ref.assert_close(numpy64(su), su_ref, scale, "float64", what="d2/du")


@pytest.mark.parametrize(
    "band", [(1, 0, 0, False), (4, 1, 1, True), (5, 3, 0, False)], ids=band_id,
)
def test_compute_gradient_float64(impl, band):
    """Finite differences (tf.test.compute_gradient) in float64."""
    n, lower, upper, cyclic = band
    (x, _), (d, _), (w, _) = _inputs(("fd", band), n, lower, upper, (2,))
    for transpose in (False, True):
        theo, num = tf.test.compute_gradient(
            lambda x, d: ops.band_matmul(x, d, lower, upper, cyclic=cyclic, transpose=transpose), [x, d]
        )
        for t, m in zip(theo, num):
            np.testing.assert_allclose(t, m, atol=1e-7, rtol=1e-7)
    theo, num = tf.test.compute_gradient(lambda a, b: ops.band_outer(a, b, lower, upper, cyclic=cyclic), [x, w])
    for t, m in zip(theo, num):
        np.testing.assert_allclose(t, m, atol=1e-7, rtol=1e-7)


# --------------------------------------------------------------------------
# Inside tf.function


@pytest.mark.parametrize("band", [(6, 2, 1, False), (5, 1, 3, True), (33, 0, 17, True)], ids=band_id)
def test_inside_tf_function(impl, band):
    n, lower, upper, cyclic = band
    (x, x64), (d, d64), (w, w64) = _inputs(("tff", band), n, lower, upper, (4, 2))

    def step(x, d, w):
        with tf.GradientTape() as tape:
            tape.watch([x, d])
            y = ops.band_matmul(x, d, lower, upper, cyclic=cyclic)
            yt = ops.band_matmul(x, d, lower, upper, cyclic=cyclic, transpose=True)
            loss = tf.reduce_sum(w * y)
        dx, dd = tape.gradient(loss, [x, d])
        return y, yt, ops.band_outer(x, w, lower, upper, cyclic=cyclic), dx, dd

    static = tf.function(step)
    dynamic = tf.function(step, input_signature=[
        tf.TensorSpec([None, None, n], tf.float64),
        tf.TensorSpec([n, lower + upper + 1], tf.float64),
        tf.TensorSpec([None, None, n], tf.float64),
    ])
    (dx_ref, _), (dd_ref, _) = matmul_grads_ref(x64, d64, w64, lower, upper, cyclic, False)
    want = [
        ref.band_matmul(x64, d64, lower, upper, cyclic),
        ref.band_matmul(x64, d64, lower, upper, cyclic, True),
        ref.band_outer(x64, w64, lower, upper, cyclic),
        dx_ref,
        dd_ref,
    ]
    for fn in (static, dynamic):
        for got, expected in zip(fn(x, d, w), want):
            np.testing.assert_allclose(numpy64(got), expected, rtol=1e-10, atol=1e-10)
    # The dynamic signature also serves other batch shapes, including empty ones.
    for batch in [(1, 3), (0, 2)]:
        (x2, x2_64), _, (w2, w2_64) = _inputs(("tff2", band, batch), n, lower, upper, batch)
        y, _, g, _, _ = dynamic(x2, d, w2)
        np.testing.assert_allclose(numpy64(y), ref.band_matmul(x2_64, d64, lower, upper, cyclic), atol=1e-10)
        np.testing.assert_allclose(numpy64(g), ref.band_outer(x2_64, w2_64, lower, upper, cyclic), atol=1e-10)


def test_unknown_n_in_tf_function(impl):
    """Unknown n: the kernel computes it; the fallback refuses cleanly."""
    n, lower, upper = 7, 2, 3
    (x, x64), (d, d64), _ = _inputs(("unknown-n",), n, lower, upper, (2,))
    fn = tf.function(
        lambda x, d: ops.band_matmul(x, d, lower, upper),
        input_signature=[tf.TensorSpec([None, None], tf.float64), tf.TensorSpec([None, None], tf.float64)],
    )
    if impl.compiled:
        np.testing.assert_allclose(numpy64(fn(x, d)), ref.band_matmul(x64, d64, lower, upper), atol=1e-10)
    else:
        with pytest.raises(ValueError, match="`x`"):
            fn(x, d)


def test_compiled_ops_are_used(impl):
    """The graph holds the custom ops exactly when the compiled path is active."""
    n, lower, upper = 6, 1, 2
    (x, _), (d, _), _ = _inputs(("optypes",), n, lower, upper, (2,))

    @tf.function
    def fn(x, d):
        with tf.GradientTape() as tape:
            tape.watch(d)
            y = ops.band_matmul(x, d, lower, upper)
        return y, tape.gradient(y, d)

    graph = fn.get_concrete_function(x, d).graph
    types = {op.type for op in graph.get_operations()}
    if impl.compiled:
        assert {"BandMatmul", "BandOuter"} <= types
    else:
        assert not {"BandMatmul", "BandOuter"} & types
