"""The programs people run: train, predict, evaluate, the web page, and the `defect-tf` command.

Importing this package imports `cli` first, so TensorFlow's start-up chatter is held back whichever
program is imported.
"""

from defect_tf.apps import cli  # noqa: F401
