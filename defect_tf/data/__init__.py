"""Data in: the label file, splits, reading images, the tf.data pipeline, augmentation, checks, the demo set."""
