"""Export a trained bundle for the line: python export.py --model outputs --format onnx|litert|saved_model

The program lives in `defect_tf/apps/export.py` (installed as `defect-tf export`);
this file keeps the short command.
"""

import sys

from defect_tf.apps.launch import launch

if __name__ == "__main__":
    sys.exit(launch("export"))
