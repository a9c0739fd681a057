"""Score a trained bundle per attribute: python evaluate.py [--model outputs/] [--data DIR --labels FILE]

The program lives in `defect_tf/apps/evaluate.py` (installed as `defect-tf evaluate`);
this file keeps the short command.
"""

import sys

from defect_tf.apps.launch import launch

if __name__ == "__main__":
    sys.exit(launch("evaluate"))
