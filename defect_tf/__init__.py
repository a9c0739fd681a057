"""defect_tf: visual-defect classifiers from a folder of photos and a label file (map: docs/architecture.md)."""
