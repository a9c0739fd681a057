"""Train a multi-label defect classifier: python train.py --data images/ --labels labels.txt

The program lives in `defect_tf/apps/train.py` (installed as `defect-tf train`);
this file keeps the short command.
"""

import sys

from defect_tf.apps.cli import run
from defect_tf.apps.train import main

if __name__ == "__main__":
    sys.exit(run(main))
