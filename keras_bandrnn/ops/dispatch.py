"""Chooses between the compiled kernels and the pure-TensorFlow compositions."""

import contextlib
import threading

import tensorflow as tf

from keras_bandrnn import _lib

_local = threading.local()


@contextlib.contextmanager
def pure_tf():
    """Within this context every op is built from stock TensorFlow ops.

    Used by `keras_bandrnn.export` (graphs that stock TF Serving can load) and
    by the tests that check the fallback. Results equal the compiled kernels'
    to float tolerance.
    """
    depth = getattr(_local, "depth", 0)
    _local.depth = depth + 1
    try:
        yield
    finally:
        _local.depth = depth


def library():
    """The compiled op library, or None when the pure-TF path must be used."""
    if getattr(_local, "depth", 0):
        return None
    return _lib.op_library()


def name_scope(name):
    """`tf.name_scope(name)` while building a graph; nothing when eager.

    Eager ops do not use their names, and entering a name scope costs about
    2 us per call, a tenth of a small op's whole eager call.
    """
    if tf.executing_eagerly():
        return contextlib.nullcontext()
    return tf.name_scope(name)
