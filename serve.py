"""The HTTP service: python serve.py --model outputs, then POST images to http://127.0.0.1:8000/predict

The program lives in `defect_tf/apps/serve.py` (installed as `defect-tf serve`);
this file keeps the short command.
"""

import sys

from defect_tf.apps.launch import launch

if __name__ == "__main__":
    sys.exit(launch("serve"))
