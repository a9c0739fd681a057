"""Train a multi-label defect classifier: python train.py --data images/ --labels labels.txt

The program lives in `defect_tf/apps/train.py` (installed as `defect-tf train`);
this file keeps the short command.
"""

import sys

from defect_tf.apps.launch import launch

if __name__ == "__main__":
    sys.exit(launch("train"))
