"""keras-bandrnn: Keras RNN cells with banded and block-sparse recurrences."""

from keras_bandrnn import band
from keras_bandrnn import callbacks
from keras_bandrnn import initializers
from keras_bandrnn import ops
from keras_bandrnn import sizing
from keras_bandrnn.cells import BandCell
from keras_bandrnn.cells import ClosedBandCell
from keras_bandrnn.cells import ConditionalGRUCell
from keras_bandrnn.cells import FactorizedCell
from keras_bandrnn.cells import GridBandCell

__version__ = "0.1.0"
