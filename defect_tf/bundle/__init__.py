"""The trained model on disk: the Keras model plus everything needed to use it, saved atomically."""
