"""Data for the example tasks: the copy task, Braille reading and text8.

Every generator here is a deterministic function of `(seed, step)`, so a
training run that is stopped and resumed sees exactly the same batches. The
TensorFlow Datasets builders for text8 and Braille live in
`keras_bandrnn.datasets.tfds_builders` (importing it registers them; it needs
`tensorflow-datasets`).
"""

from keras_bandrnn.datasets import braille
from keras_bandrnn.datasets import copy
from keras_bandrnn.datasets import text8
