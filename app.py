"""The web app: python app.py [--model outputs/], then open http://127.0.0.1:7860 and upload a photo.

The program lives in `defect_tf/apps/web.py` (installed as `defect-tf web`);
this file keeps the short command.
"""

import sys

from defect_tf.apps.launch import launch

if __name__ == "__main__":
    sys.exit(launch("web"))
