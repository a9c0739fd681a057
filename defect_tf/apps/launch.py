"""Starting a program: TensorFlow imported with its start-up chatter held back, then the program imported and run.

Importing TensorFlow takes seconds; a Ctrl-C in them ends like one later (`interrupted`, exit status 130), not
with a traceback of the import machinery. This module imports nothing heavy itself.
"""

from __future__ import annotations

import importlib
import sys

from defect_tf.apps.cli import EXIT_INTERRUPTED, run
from defect_tf.quiet import quiet_tensorflow_start

# Programs that start TensorFlow themselves, only when they need it (inference with an exported model needs none).
STARTS_TENSORFLOW_ITSELF = {"predict", "serve"}


def launch(program: str, argv: list[str] | None = None) -> int:
    """Run `defect_tf.apps.<program>`'s `main(argv)` (argv None: the command line) as a command: one-line errors."""
    try:
        if program not in STARTS_TENSORFLOW_ITSELF:
            quiet_tensorflow_start()
        module = importlib.import_module(f"defect_tf.apps.{program}")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return run(lambda: module.main(argv))
