"""Writing files safely: under a temporary name in the same folder, then renamed into place.

A reader never sees half a file, a failed write leaves no temporary file behind, and a full disk
is reported as one line that names the file (the file it would have replaced is untouched).
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from defect_tf.errors import DefectTFError


class DiskFullError(DefectTFError):
    """The disk filled up while writing; nothing that was there before was replaced."""


def is_disk_full(error: BaseException | None) -> bool:
    """True if `error` (or what caused it, e.g. inside h5py or zipfile) is 'no space left on device'."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def disk_full(path: str | Path, intact: str) -> DiskFullError:
    return DiskFullError(f"disk full while writing {path}; {intact}. Free some space and run the command again")


def _umask() -> int:
    """The process's umask: read from /proc where it can be (setting it to read it would race other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path: Path, directory: bool = False) -> None:
    """Give a file (0666) or folder (0777) made under a private temporary name the permissions the umask gives any
    new file: mkstemp and mkdtemp make them for their owner only, so another account (the one running the web
    page or the service) could not read a bundle."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def atomic_write(path: str | Path, write: Callable[[Path], None], intact: str = "the previous version is intact") -> Path:
    """Call `write(temporary_path)`, then rename the temporary file onto `path`.

    The temporary name keeps `path`'s suffixes (Keras insists on `.weights.h5`, matplotlib on `.png`).
    `intact` says what a disk-full message can promise the user.
    """
    path = Path(path)
    stem, *suffixes = path.name.split(".")
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{stem}.", suffix=".tmp" + "".join(
        f".{suffix}" for suffix in suffixes))
    os.close(descriptor)
    temporary = Path(name)
    try:
        write(temporary)
        follow_umask(temporary)
        temporary.replace(path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if is_disk_full(error):
            raise disk_full(path, intact) from None
        raise
    return path


def write_text(path: str | Path, text: str, intact: str = "the previous version is intact") -> Path:
    """`atomic_write` for a UTF-8 text file."""
    return atomic_write(path, lambda temporary: temporary.write_text(text, encoding="utf-8"), intact)


def replace_folder(final: str | Path, fill: Callable[[Path], None], intact: str) -> Path:
    """Fill a new folder beside `final` with `fill(folder)`, then swap it in for `final` in two renames.

    If the process dies between the renames, the old folder is still there under `.<name>.old-*`
    (see `previous_folders`), so a reader can fall back to it.
    """
    final = Path(final)
    staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.new-"))
    try:
        fill(staging)
        follow_umask(staging, directory=True)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if is_disk_full(error):
            raise disk_full(final, intact) from None
        raise
    previous = None
    if final.exists():
        previous = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.old-"))
        previous.rmdir()
        final.rename(previous)
    staging.rename(final)
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)
    return final


def previous_folders(final: str | Path) -> list[Path]:
    """Folders that `replace_folder` moved aside and did not get to delete (newest first)."""
    final = Path(final)
    found = list(final.parent.glob(f".{final.name}.old-*")) if final.parent.is_dir() else []
    return sorted(found, key=lambda folder: folder.stat().st_mtime, reverse=True)
