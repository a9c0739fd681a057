"""What kind of file some bytes are, from their first bytes: so a wrong file gets its own message ("a PNG image, not a
weights file") instead of a reader's confusing one, and never a reader's advice to load it unsafely."""

from __future__ import annotations

from pathlib import Path

from defect_tf.io.untrusted import open_file

# (first bytes, what they are), most specific first
SIGNATURES = (
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"PK\x05\x06", "a ZIP archive"),
    (b"\x80\x02", "a pickle"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x93NUMPY", "a NumPy array file (.npy)"),
    (b"\x08\x01\x12", "an ONNX or other protobuf file"),
)
SNIFF_BYTES = 16


def describe_file_type(head: bytes) -> str:
    """What a file starting with `head` is ("a PNG image", "a pickle", ...), or a plain description."""
    if not head:
        return "an empty file"
    for signature, kind in SIGNATURES:
        if head.startswith(signature):
            return kind
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "a WebP image"
    if head[:1] in (b"{", b"[") or head.lstrip()[:1] in (b"{", b"["):
        return "a text file (JSON?)"
    try:
        head.decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return "a file of an unknown kind"


def file_type(path: str | Path, max_bytes: int, what: str = "file") -> str:
    """`describe_file_type` of a file's first bytes, opened by the guarded reader (regular, at most `max_bytes`)."""
    with open_file(path, max_bytes, what) as file:
        return describe_file_type(file.read(SNIFF_BYTES))
