"""Write a large training set once as shards: python prepare.py --data images/ --labels labels.txt --output shards/

The program lives in `defect_tf/apps/prepare.py` (installed as `defect-tf prepare`);
this file keeps the short command.
"""

import sys

from defect_tf.apps.launch import launch

if __name__ == "__main__":
    sys.exit(launch("prepare"))
