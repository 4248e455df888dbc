"""Keras RNN cells with structured recurrent matrices."""

from keras_bandrnn.cells.conditional_gru_cell import ConditionalGRUCell

__all__ = ["ConditionalGRUCell"]
