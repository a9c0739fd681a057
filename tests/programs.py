"""Running a program as a user's command does, in a fresh Python process: what it printed, its exit status and
which heavy libraries it imported (the runtime must answer without TensorFlow, Keras or matplotlib)."""

import json
import subprocess
import sys

HEAVY = ("tensorflow", "keras", "matplotlib")


def run_counting_imports(program: str, argv: list[str]) -> tuple[int | None, list[str], str, str]:
    """(exit status, the heavy libraries imported, standard output, standard error) of `defect_tf.apps.<program>`
    launched with `argv` in a new process; the status is None when the process ended before saying it."""
    code = ("import json, sys\nfrom defect_tf.apps.launch import launch\n"
            f"status = launch({program!r}, {argv!r})\n"
            f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
            "print(json.dumps([status, heavy]), file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = result.stderr.strip().splitlines()
    try:
        status, heavy = json.loads(lines[-1])
    except (IndexError, ValueError):
        return None, [], result.stdout, result.stderr
    return status, heavy, result.stdout, result.stderr
