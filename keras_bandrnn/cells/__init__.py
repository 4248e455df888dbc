"""Keras RNN cells with structured recurrent matrices."""

from keras_bandrnn.cells.band_cell import BandCell
from keras_bandrnn.cells.closed_band_cell import ClosedBandCell
from keras_bandrnn.cells.conditional_gru_cell import ConditionalGRUCell
from keras_bandrnn.cells.factorized_cell import FactorizedCell
from keras_bandrnn.cells.grid_band_cell import GridBandCell

__all__ = ["BandCell", "ClosedBandCell", "ConditionalGRUCell", "FactorizedCell", "GridBandCell"]
