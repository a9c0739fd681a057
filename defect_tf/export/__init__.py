"""Exporting a bundle's model for other runtimes (ONNX, LiteRT, SavedModel): one table of formats (`formats.py`,
no TensorFlow), one writer per format, parity with Keras measured on the test split and recorded in bundle.json."""
