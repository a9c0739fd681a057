"""The one way the tool opens a file it did not write: regular files only, a size cap checked before reading.

A named pipe, a device (`/dev/zero`), a socket or a symbolic link to one of them would hang a reader or feed
it without end; they are refused from their status, before they are opened (and checked again on the open
file, in case the path was swapped in between). Every caller names the kind of file, whose cap
`defect_tf/limits.py` sets.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import BinaryIO, Iterator

from defect_tf.errors import DefectTFError

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


class UnreadableFileError(DefectTFError):
    """A file that cannot be read safely or at all; `reason` is the short why (without the path)."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


def describe_size(size: int) -> str:
    """Bytes as people say them: 812 bytes, 3.4 MB, 1.2 GB (powers of 1000)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def _a(what: str) -> str:
    return f"{'an' if what[:1].lower() in 'aeiou' else 'a'} {what}"


def _refuse_status(path: str | Path, status: os.stat_result, max_bytes: int, what: str) -> None:
    if not stat.S_ISREG(status.st_mode):
        kind = next((name for test, name in _KINDS if test(status.st_mode)), "not a regular file")
        raise UnreadableFileError(path, f"{kind}, not a regular file; {_a(what)} must be a regular file")
    if status.st_size > max_bytes:
        raise UnreadableFileError(path, f"{describe_size(status.st_size)}, over the {describe_size(max_bytes)} "
                                        f"limit for {_a(what)}")


def check_file(path: str | Path, max_bytes: int, what: str = "file") -> int:
    """The size of `path` if it is a regular file (symbolic links followed) of at most `max_bytes`, else an
    UnreadableFileError saying why (not found, no permission, a pipe or device, too large). Opens nothing."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        reason = "a symbolic link to nothing" if os.path.islink(path) else "file not found"
        raise UnreadableFileError(path, reason) from None
    except PermissionError:
        raise UnreadableFileError(path, "permission denied") from None
    except (OSError, ValueError) as error:  # ValueError: a NUL character in the path
        raise UnreadableFileError(path, getattr(error, "strerror", None) or str(error)) from None
    _refuse_status(path, status, max_bytes, what)
    return status.st_size


@contextlib.contextmanager
def open_file(path: str | Path, max_bytes: int, what: str = "file") -> Iterator[BinaryIO]:
    """`path` opened for binary reading once `check_file` passes; the open file is checked again (a path
    swapped for a pipe in between is still refused, and never blocks: it is opened non-blocking)."""
    check_file(path, max_bytes, what)
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as error:
        raise UnreadableFileError(path, error.strerror or str(error)) from None
    try:
        _refuse_status(path, os.fstat(descriptor), max_bytes, what)
    except BaseException:
        os.close(descriptor)
        raise
    with os.fdopen(descriptor, "rb") as file:
        yield file


def read_bytes(path: str | Path, max_bytes: int, what: str = "file") -> bytes:
    """The whole of a regular file of at most `max_bytes` (one that grows past it while read is refused)."""
    with open_file(path, max_bytes, what) as file:
        try:
            data = file.read(max_bytes + 1)
        except OSError as error:
            raise UnreadableFileError(path, error.strerror or str(error)) from None
    if len(data) > max_bytes:
        raise UnreadableFileError(path, f"grew past the {describe_size(max_bytes)} limit for {_a(what)} while read")
    return data


def read_text(path: str | Path, max_bytes: int, what: str = "file") -> str:
    """`read_bytes` decoded as UTF-8 (a byte-order mark dropped); other bytes are an UnreadableFileError."""
    data = read_bytes(path, max_bytes, what)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UnreadableFileError(path, f"not UTF-8 text (byte {error.start}: {data[error.start:error.start + 1]!r}); "
                                        f"save the {what} as UTF-8") from None
