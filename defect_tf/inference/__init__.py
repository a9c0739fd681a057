"""Using a trained model: probabilities and detections for image files, with TensorFlow."""
