"""keras-bandrnn: Keras RNN cells with banded and block-sparse recurrences."""

from keras_bandrnn import band
from keras_bandrnn import ops
from keras_bandrnn.cells import ConditionalGRUCell

__version__ = "0.1.0"
