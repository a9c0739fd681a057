"""Starting a program: TensorFlow imported with its start-up chatter held back, then the program imported and run.

Importing TensorFlow takes seconds; a Ctrl-C in them ends the process at once with `interrupted` and exit status
130, not with a traceback of the import machinery. This module imports nothing heavy itself.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import threading
from collections.abc import Iterator

from defect_tf.apps.cli import EXIT_INTERRUPTED, run
from defect_tf.quiet import quiet_tensorflow_start

# Programs that start TensorFlow themselves, only when they need it (inference with an exported model needs none).
STARTS_TENSORFLOW_ITSELF = {"predict", "serve"}


@contextlib.contextmanager
def ctrl_c_ends_at_once() -> Iterator[None]:
    """While the block runs, Ctrl-C writes `interrupted` and ends the process with status 130 straight away.

    Meant for the imports before a program starts, when nothing is written yet: a KeyboardInterrupt raised inside
    TensorFlow's import machinery can surface as an ImportError, or leave Python's exit-by-signal flag set so that
    `python -m defect_tf` dies by SIGINT instead of returning 130. A SIGINT that is ignored (a background job) stays so.
    """
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    stderr = os.dup(2)  # the real one: fd 2 may be held back while TensorFlow starts

    def end(signum: int, frame: object) -> None:
        os.write(stderr, b"interrupted\n")
        os._exit(EXIT_INTERRUPTED)

    previous = signal.signal(signal.SIGINT, end)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        os.close(stderr)


def launch(program: str, argv: list[str] | None = None) -> int:
    """Run `defect_tf.apps.<program>`'s `main(argv)` (argv None: the command line) as a command: one-line errors."""
    with ctrl_c_ends_at_once():
        if program not in STARTS_TENSORFLOW_ITSELF:
            quiet_tensorflow_start()
        module = importlib.import_module(f"defect_tf.apps.{program}")
    return run(lambda: module.main(argv))
