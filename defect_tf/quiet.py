"""Holding back what native libraries print to stderr as they start (TensorFlow's oneDNN and CUDA lines, LiteRT's
delegate line): they come from C++ before any log level applies and would bury a command's own output. Imports
nothing heavy itself."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def native_stderr_held_back():
    """Send file descriptor 2 to a temporary file; replay it only if the block fails (not if it is interrupted).

    TensorFlow's C++ start-up prints INFO lines (oneDNN, CUDA stubs) to fd 2 before any log level
    applies, which would bury a command's real output.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except Exception:  # not KeyboardInterrupt: a Ctrl-C during the import is not TensorFlow's failure
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def quiet_tensorflow_start() -> None:
    """Import TensorFlow and look for GPUs with its start-up chatter held back; keep only its Python errors
    (its warnings, e.g. about retracing a predict function when one program runs after another in `make demo`,
    give a user nothing to do)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with native_stderr_held_back():
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")
    tf.get_logger().setLevel("ERROR")
