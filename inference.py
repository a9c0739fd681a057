"""Detect defects in photos with a trained bundle: python inference.py photo.jpg [more.jpg ...]

The program lives in `defect_tf/apps/predict.py` (installed as `defect-tf predict`);
this file keeps the short command.
"""

import sys

from defect_tf.apps.cli import run
from defect_tf.apps.predict import main

if __name__ == "__main__":
    sys.exit(run(main))
