"""Why the model said so: heatmaps per attribute, and how well they point at known defects."""
