"""The programs people run: train, predict, evaluate, the web page, and the `defect-tf` command.

Each is started by `launch.py` (the scripts beside `train.py` and the `defect-tf` command use it), which
imports TensorFlow quietly first.
"""
