"""Anomaly localisation trained on intact photos: models by name (`registry`), their bundle (`metadata`, `store`),
thresholds (`calibration`), outlines (`regions`) and the training run (`training`)."""
