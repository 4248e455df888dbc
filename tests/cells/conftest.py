"""Dense NumPy references for the cells (written independently of the package).

The recurrent matrix of every cell is rebuilt here as a dense float64 `(n, n)`
matrix from the cell's weights by explicit loops over the SPEC's definitions,
and the recurrence and its backpropagation through time are done in NumPy.
"""

import contextlib

import numpy as np
import pytest

from keras_bandrnn import _lib
from keras_bandrnn import ops as band_ops


@pytest.fixture(params=["compiled", "pure_tf"])
def impl(request):
    """Runs a test with the compiled kernels and with the pure-TF ops."""
    if request.param == "compiled":
        if _lib.op_library() is None:
            pytest.skip("compiled op library not built")
        ctx = contextlib.nullcontext()
    else:
        ctx = band_ops.pure_tf()
    with ctx:
        yield request.param


def band_dense(diags, lower, upper, cyclic):
    """`A[i, c] = diags[i, j]` with `c = i + j - lower` (mod n if cyclic)."""
    n, k = diags.shape
    a = np.zeros((n, n))
    for i in range(n):
        for j in range(k):
            c = i + j - lower
            if cyclic:
                c %= n
            elif not 0 <= c < n:
                continue
            a[i, c] += diags[i, j]
    return a


def in_band(r, c, lower, upper, n=None):
    """Whether entry (r, c) lies in the band (cyclic when n is given)."""
    if n is None:
        return -lower <= c - r <= upper
    return any((r + d) % n == c for d in range(-lower, upper + 1))


def grid_owned(n, lower, upper, stride):
    """Masks of the hub entries the grid owns (not in the band, no repeats)."""
    m = -(-n // stride)
    rows = np.zeros((m, n))
    cols = np.zeros((n, m))
    for j in range(m):
        h = j * stride
        for c in range(n):
            rows[j, c] = not in_band(h, c, lower, upper)
        for r in range(n):
            cols[r, j] = not in_band(r, h, lower, upper) and r % stride != 0
    return rows, cols


def shift_dense(n, s, cyclic):
    a = np.zeros((n, n))
    for i in range(n):
        if cyclic:
            a[i, (i - s) % n] = 1.0
        elif i - s >= 0:
            a[i, i - s] = 1.0
    return a


def dense_recurrence(cell):
    """The cell's recurrent matrix `A` (float64) and a map dA -> weight grads."""
    name = type(cell).__name__
    w = {v.name: np.asarray(v.numpy(), np.float64) for v in cell.weights}
    n = cell.units
    if name == "FactorizedCell":
        u, v = w["recurrent_u"], w["recurrent_v"]
        return u @ v, lambda da: {"recurrent_u": da @ v.T, "recurrent_v": u.T @ da}
    lower, upper, cyclic = cell.lower, cell.upper, cell.cyclic
    diags = w["recurrent_kernel"].copy()
    k = diags.shape[1]
    if cell.active_half_width is not None:
        active = int(w["active_half_width"])
        for j in range(k):
            if abs(j - lower) > active:
                diags[:, j] = 0.0
    a = band_dense(diags, lower, upper, cyclic)
    if cell.fixed_shift:
        a += shift_dense(n, cell.shift, cyclic)
    rows_mask = cols_mask = None
    if name == "GridBandCell":
        s = cell.grid_stride
        rows_mask, cols_mask = grid_owned(n, lower, upper, s)
        for j in range(rows_mask.shape[0]):
            a[j * s, :] += w["hub_rows"][j] * rows_mask[j]
            a[:, j * s] += w["hub_columns"][:, j] * cols_mask[:, j]

    def grads(da):
        g = np.zeros((n, k))
        for i in range(n):
            for j in range(k):
                if cell.active_half_width is not None and abs(j - lower) > active:
                    continue
                c = i + j - lower
                if cyclic:
                    c %= n
                elif not 0 <= c < n:
                    continue
                g[i, j] = da[i, c]
        out = {"recurrent_kernel": g}
        if rows_mask is not None:
            s = cell.grid_stride
            out["hub_rows"] = da[::s, :] * rows_mask
            out["hub_columns"] = da[:, ::s] * cols_mask
        return out

    return a, grads


def activation_fns(cell):
    name = getattr(cell.activation, "__name__", "linear")
    if name == "tanh":
        return np.tanh, lambda h: 1.0 - h * h
    if name == "linear":
        return (lambda z: z), (lambda h: np.ones_like(h))
    if name == "sigmoid":
        return (lambda z: 1 / (1 + np.exp(-z))), (lambda h: h * (1 - h))
    if name == "relu":
        return (lambda z: np.maximum(z, 0)), (lambda h: (h > 0).astype(np.float64))
    if name == "softsign":  # not one the fused step knows: the generic path
        return (lambda z: z / (1 + np.abs(z))), (lambda h: (1 - np.abs(h)) ** 2)
    raise NotImplementedError(name)


def reference_forward_backward(cell, x, g, h0=None):
    """Runs the cell's recurrence over `x` (B, T, d) in float64.

    Returns the outputs `(B, T, n)` and the gradients of
    `L = sum(g * outputs)` with respect to the inputs and every weight.
    """
    w = {v.name: np.asarray(v.numpy(), np.float64) for v in cell.weights}
    a, weight_grads = dense_recurrence(cell)
    f, df = activation_fns(cell)
    kernel = w["kernel"]
    bias = w.get("bias", np.zeros(cell.units))
    x = np.asarray(x, np.float64)
    b, t, _ = x.shape
    hs = [np.zeros((b, cell.units)) if h0 is None else np.asarray(h0, np.float64)]
    for step in range(t):
        hs.append(f(x[:, step] @ kernel + hs[-1] @ a.T + bias))
    out = np.stack(hs[1:], axis=1)
    dkernel = np.zeros_like(kernel)
    dbias = np.zeros_like(bias)
    da = np.zeros_like(a)
    dx = np.zeros_like(x)
    dh = np.zeros((b, cell.units))
    for step in reversed(range(t)):
        dh = dh + g[:, step]
        dz = dh * df(hs[step + 1])
        dkernel += x[:, step].T @ dz
        dbias += dz.sum(0)
        da += dz.T @ hs[step]
        dx[:, step] = dz @ kernel.T
        dh = dz @ a
    grads = {"kernel": dkernel, **weight_grads(da)}
    if cell.use_bias:
        grads["bias"] = dbias
    return out, grads, dx
