"""Using a trained bundle on the line: an inferencer per runtime (ONNX Runtime, LiteRT, Keras), each split into
pre-processing (decode, upright, resize: NumPy and Pillow), forward (the runtime) and post-processing (the task's
decision rule, `decisions.py`). Nothing here imports TensorFlow, Keras or matplotlib but the Keras inferencer,
which imports them when it is chosen."""
