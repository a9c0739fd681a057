"""`python -m defect_tf COMMAND ...`: the `defect-tf` command without the installed script."""

import sys

from defect_tf.apps.main import main

if __name__ == "__main__":
    sys.exit(main())
