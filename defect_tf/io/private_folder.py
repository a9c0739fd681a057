"""A process's private temporary folder (mode 0700), removed when the process ends, and the folders of earlier
processes that could not remove their own (killed, or stopped while starting) removed when the next one starts.

Each folder holds an owner file naming its process, so only folders this tool made, for a process that no longer
runs, are ever removed; another user's folders cannot be read and are left alone.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

OWNER_FILE = "owner.pid"  # in each private folder: the id of the process it belongs to


def process_runs(pid: int) -> bool:
    """Whether a process with this id runs (or may run: where it cannot be told, as off POSIX, it is taken to)."""
    if os.name != "posix":  # os.kill(pid, 0) would end the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it runs, as another user's process
        return True
    return True


def remove_abandoned(prefix: str, parent: Path | None = None) -> list[Path]:
    """Remove the folders `prefix*` in `parent` (the temporary folder) whose owner file names a process that no
    longer runs; a folder without a readable owner file is not this tool's to judge. Returns those removed."""
    removed = []
    for folder in sorted(Path(parent or tempfile.gettempdir()).glob(f"{prefix}*")):
        try:
            pid = int((folder / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if pid != os.getpid() and not process_runs(pid):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def private_folder(prefix: str, parent: Path | None = None) -> Path:
    """A new folder `prefix*` (mode 0700) in `parent` (the temporary folder), removed when this process exits;
    earlier processes' abandoned folders of the same prefix are removed first."""
    remove_abandoned(prefix, parent)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    (folder / OWNER_FILE).write_text(str(os.getpid()))
    atexit.register(shutil.rmtree, folder, True)
    return folder
