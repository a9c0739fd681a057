"""Detect defects in photos with a trained bundle: python inference.py photo.jpg [more.jpg ...]

The program lives in `defect_tf/apps/predict.py` (installed as `defect-tf predict`);
this file keeps the short command.
"""

import sys

from defect_tf.apps.launch import launch

if __name__ == "__main__":
    sys.exit(launch("predict"))
