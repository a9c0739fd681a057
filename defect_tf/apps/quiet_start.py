"""Imported first by a script that uses the library directly (the benchmarks): starts TensorFlow with its start-up
chatter held back, as `launch.py` does for the programs."""

from defect_tf.quiet import quiet_tensorflow_start

quiet_tensorflow_start()
