"""The folders the tool writes into: it replaces or deletes only files it wrote itself, and one run at a time.

A folder the tool writes into gets a manifest (`.defect_tf-output.json`) naming the entries it
claimed. Before a command writes, it claims the names it will write: a name that already exists in
the folder without being in the manifest is someone else's file, and the command stops with one
line instead of replacing it. An output folder may not overlap the data folder. A lock file keeps
two runs from writing into one folder at once (the lock goes away with the process that held it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
from pathlib import Path
from typing import Iterable, Iterator

from defect_tf.errors import DefectTFError
from defect_tf.io.files import write_text
from defect_tf.io.untrusted import read_text
from defect_tf.limits import MAX_JSON_FILE_BYTES

DEFAULT_OUTPUT = "outputs"  # where train.py writes, and where the other programs look for a model, by default
MANIFEST_FILE = ".defect_tf-output.json"
LOCK_FILE = ".defect_tf.lock"
_held_locks: dict[Path, int] = {}  # folder -> open file descriptor holding its lock


class OutputFolderError(DefectTFError):
    """An output folder that the tool must not write into (foreign files, overlap with data, in use)."""


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_no_overlap(output: str | Path, data: str | Path, flag: str = "--output") -> None:
    """Refuse an output folder that is, contains or lies inside the data folder."""
    output, data = Path(output).resolve(), Path(data).resolve()
    if _inside(output, data) or _inside(data, output):
        raise OutputFolderError(f"{flag} {output} overlaps the data folder {data}; choose an output folder outside it "
                                "(the tool never writes among your images)")


def _legacy_names(folder: Path) -> set[str]:
    """Entries of an output folder written before manifests existed: recognised by their bundle's format (the
    current one or one that migrates to it)."""
    from defect_tf.bundle.layout import BUNDLE_DIR, METADATA_FILE
    from defect_tf.bundle.metadata import FORMAT, MIGRATIONS

    try:
        metadata = json.loads(read_text(folder / BUNDLE_DIR / METADATA_FILE, MAX_JSON_FILE_BYTES, "bundle metadata"))
    except (DefectTFError, ValueError):
        return set()
    if not isinstance(metadata, dict) or metadata.get("format") not in (FORMAT, *MIGRATIONS):
        return set()
    return {entry.name for entry in folder.iterdir()}


def claimed_names(folder: str | Path) -> set[str]:
    """The entries the manifest says the tool wrote (empty for a folder without one)."""
    manifest = Path(folder) / MANIFEST_FILE
    if not manifest.exists() and not manifest.is_symlink():
        return _legacy_names(Path(folder)) if Path(folder).is_dir() else set()
    try:
        names = json.loads(read_text(manifest, MAX_JSON_FILE_BYTES, "manifest"))["written"]
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise TypeError
    except (DefectTFError, ValueError, KeyError, TypeError):
        raise OutputFolderError(f"{manifest} is unreadable; it marks the files this tool wrote, so nothing in "
                                f"{folder} will be replaced. Delete it only if every file there is yours to lose")
    return set(names)


def make_folder(folder: str | Path, what: str = "--output") -> Path:
    """Create `folder` (and its parents) if needed; one-line errors for a file in the way or no permission."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputFolderError(f"{what} {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputFolderError(f"{what} {folder}: cannot create the folder ({error.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputFolderError(f"{what} {folder}: the folder is not writable")
    return folder


def claim(folder: str | Path, names: Iterable[str], what: str = "--output") -> Path:
    """Create `folder` if needed and claim `names` in it, or stop if one of them is someone else's file.

    Returns the folder. Names are entries directly in the folder (files or sub-folders).
    """
    folder = make_folder(folder, what)
    names = set(names)
    ours = claimed_names(folder)
    foreign = sorted(name for name in names if (folder / name).exists() and name not in ours)
    if foreign:
        raise OutputFolderError(f"{what} {folder} already holds {', '.join(foreign)}, which this tool did not write; "
                                "it would replace them, so it stops. Choose an empty or new folder")
    if not names <= ours:
        write_text(folder / MANIFEST_FILE, json.dumps({"tool": "defect_tf", "written": sorted(ours | names)}, indent=1))
    return folder


@contextlib.contextmanager
def locked(folder: str | Path, what: str = "--output") -> Iterator[Path]:
    """Hold `folder`'s lock for the block (created if needed); stop at once if another process holds it.

    Re-entrant within one process (training scores its test split into its own locked folder); the
    operating system drops the lock if the process dies.
    """
    folder = make_folder(folder, what).resolve()
    if folder in _held_locks:
        yield folder
        return
    try:  # never through a link, never a pipe or device: the lock is truncated and written
        descriptor = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                             0o666)
    except OSError as error:
        raise OutputFolderError(f"{folder / LOCK_FILE}: cannot open the lock file ({error.strerror}); it is not one "
                                "this tool wrote: remove it if it is not yours") from None
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise OutputFolderError(f"{folder / LOCK_FILE} is not a regular file, so not a lock this tool wrote; remove it "
                                "if it is not yours")
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(descriptor, 32).decode(errors="replace").strip()
        os.close(descriptor)
        raise OutputFolderError(f"another run is using {folder}" + (f" (process {holder})" if holder else "")
                                + f"; wait for it to finish or choose another {what}") from None
    os.ftruncate(descriptor, 0)
    os.write(descriptor, str(os.getpid()).encode())
    _held_locks[folder] = descriptor
    try:
        yield folder
    finally:
        del _held_locks[folder]
        os.ftruncate(descriptor, 0)
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)
