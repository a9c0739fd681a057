"""Shared command-line behaviour: a quiet TensorFlow start-up, and user errors as one line with exit status 2.

Import this module before anything that imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import Callable

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


@contextlib.contextmanager
def _native_stderr_held_back():
    """Send file descriptor 2 to a temporary file; replay it only if the block fails.

    TensorFlow's C++ start-up prints INFO lines (oneDNN, CUDA stubs) to fd 2 before any log level
    applies, which would bury a command's real output.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def quiet_tensorflow_start() -> None:
    """Import TensorFlow and look for GPUs with its start-up chatter held back."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _native_stderr_held_back():
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")


def run(main: Callable[[], int]) -> int:
    """Call `main`; a DefectTFError becomes `error: ...` on stderr and exit status 2, Ctrl-C exit status 130."""
    from defect_tf.errors import DefectTFError

    try:
        return main()
    except DefectTFError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


quiet_tensorflow_start()
