"""Image files before decoding (Pillow and NumPy, no TensorFlow): which files are images, what a header promises,
and the bounds checked before any decoder allocates a pixel.

Every image the tool reads (training, `--check`, prediction, evaluation, the web page) is first read here
through the guarded reader (`io/untrusted.py`) and inspected: a supported format, pixels x frames within
`limits.MAX_IMAGE_PIXELS` (TensorFlow's decoder allocates every frame of an animated GIF), at most
`limits.MAX_IMAGE_FRAMES` frames, a pixel type with a meaning in 0-255. TIFF, which TensorFlow cannot decode,
is decoded here with Pillow (`decode_with_pillow`).
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from defect_tf.errors import ImageError
from defect_tf.io.untrusted import UnreadableFileError, open_file, read_bytes
from defect_tf.limits import MAX_IMAGE_FILE_BYTES, MAX_IMAGE_FRAMES, MAX_IMAGE_PIXELS

EXIF_ORIENTATION_TAG = 0x0112
# Pillow's name for each format the tool decodes (MPO: a camera's JPEG holding more than one picture) -> its files
FORMATS = {"JPEG": (".jpg", ".jpeg"), "MPO": (), "PNG": (".png",), "BMP": (".bmp",), "GIF": (".gif",),
           "WEBP": (".webp",), "TIFF": (".tif", ".tiff")}
IMAGE_SUFFIXES = frozenset(suffix for suffixes in FORMATS.values() for suffix in suffixes)
SUPPORTED = "JPEG, PNG, BMP, GIF, WebP or TIFF"
TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
JPEG_MAGIC = b"\xff\xd8\xff"
DIGEST_CHARACTERS = 16  # of a file's SHA-256 in hex: recognises a copy of a training image by its content
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_NO_RANGE_MODES = ("I", "F")  # 32-bit integers and floats: no fixed range that maps onto 0-255


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header says, checked: its format, size, frames, EXIF orientation and content digest."""

    format: str
    width: int
    height: int
    frames: int
    orientation: int  # EXIF orientation 1-8 (1: upright or none)
    digest: str


def is_image_file(path: Path) -> bool:
    """Whether a folder entry counts as an image by its name (hidden files do not)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def find_images(folder: str | Path) -> list[Path]:
    """Every image file under `folder` by name, sorted, in sub-folders too: symbolically linked sub-folders are
    followed (each real folder once, so a link loop ends), hidden files and folders are left out. Entries that are
    not regular files are kept: the checks then say what they are."""
    found, seen = [], set()
    for parent, folders, files in os.walk(folder, followlinks=True):
        status = os.stat(parent)
        if (status.st_dev, status.st_ino) in seen:
            folders[:] = []
            continue
        seen.add((status.st_dev, status.st_ino))
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        found += [Path(parent) / name for name in files if is_image_file(Path(name))]
    return sorted(found)


def digest_of(data: bytes) -> str:
    """A file's content digest: two byte-identical files have the same one, wherever they lie."""
    return hashlib.sha256(data).hexdigest()[:DIGEST_CHARACTERS]


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.0f} megapixels" if pixels >= 1e6 else f"{pixels} pixels"


def count_gif_frames(data: bytes, limit: int) -> int:
    """A GIF's frames, counted from its block structure up to `limit` + 1, decoding nothing (Pillow's own count
    seeks frame by frame and composites each at the full canvas size: gigabytes for a frame bomb)."""
    if len(data) < 13:
        return 1
    position = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)  # header, screen, global colour table
    frames = 0
    while position < len(data) and frames <= limit:
        block = data[position]
        if block == 0x2C:  # an image: descriptor, local colour table, LZW code size, then data sub-blocks
            frames += 1
            flags = data[position + 9] if position + 9 < len(data) else 0
            position += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0) + 1
        elif block == 0x21:  # an extension: its label, then sub-blocks
            position += 2
        else:  # the trailer, or something else: the count so far
            break
        while position < len(data) and data[position]:  # sub-blocks until an empty one
            position += data[position] + 1
        position += 1
    return max(frames, 1)


def _count_frames(image: Image.Image, data: bytes | None, pixels_per_frame: int) -> int:
    """Frames, up to the bound: GIF's from its blocks, the other formats' from their headers (nothing decoded)."""
    limit = min(MAX_IMAGE_FRAMES, MAX_IMAGE_PIXELS // max(1, pixels_per_frame))
    if image.format == "GIF" and data is not None:
        return count_gif_frames(data, limit)
    if not getattr(image, "is_animated", False):
        return 1
    return int(getattr(image, "n_frames", 1))


def _header(image: Image.Image, data: bytes | None = None) -> tuple[str, int, int, int, int]:
    """(format, width, height, frames, orientation) of an opened file (`data`: its bytes); an ImageError if a bound is
    passed."""
    if image.format not in FORMATS:
        reason = f"a {image.format} image; the images this tool reads are {SUPPORTED}"
        raise ImageError(reason, reason)
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError(f"{width}x{height}: an image without pixels", "an image without pixels")
    if width * height > MAX_IMAGE_PIXELS:
        reason = (f"{width}x{height} is larger than {_megapixels(MAX_IMAGE_PIXELS)}; downscale it first")
        raise ImageError(reason, reason)
    if image.mode in _NO_RANGE_MODES:
        reason = (f"{'floating-point' if image.mode == 'F' else '32-bit'} pixels have no fixed range to show as "
                  "0-255; save it as an 8- or 16-bit image")
        raise ImageError(reason, reason)
    try:
        orientation = int(image.getexif().get(EXIF_ORIENTATION_TAG, 1))
    except Exception:  # a damaged EXIF block: the picture itself may still decode
        orientation = 1
    frames = _count_frames(image, data, width * height)
    if frames > MAX_IMAGE_FRAMES or frames * width * height > MAX_IMAGE_PIXELS:
        reason = (f"{'more than ' if frames > MAX_IMAGE_FRAMES else ''}{min(frames, MAX_IMAGE_FRAMES)} frames of "
                  f"{width}x{height} would decode to over {_megapixels(MAX_IMAGE_PIXELS)} (every frame is "
                  "decoded); keep one frame")
        raise ImageError(reason, reason)
    return image.format, width, height, frames, orientation if orientation in range(1, 9) else 1


def _open(source) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(source)
        except Image.DecompressionBombError:
            reason = f"larger than {_megapixels(MAX_IMAGE_PIXELS)}; downscale it first"
            raise ImageError(reason, reason) from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as error:
            if isinstance(error, UnidentifiedImageError):
                reason = f"not an image ({SUPPORTED})"
            elif "too large" in str(error).lower():  # Pillow's own cap on a text or colour-profile block
                reason = "a metadata block that would decompress past the limit (a decompression bomb)"
            else:
                reason = f"a damaged image header ({error})"
            raise ImageError(reason, reason) from None


def inspect_bytes(data: bytes, name: str = "image") -> ImageHeader:
    """Check an image file's bytes from their header alone (nothing is decoded); an ImageError names `name`."""
    if not data:
        raise ImageError(f"{name}: cannot read image (an empty file)", "an empty file", name)
    try:
        with _open(io.BytesIO(data)) as image:
            format_, width, height, frames, orientation = _header(image, data)
    except ImageError as error:
        raise ImageError(f"{name}: cannot read image ({error.reason})", error.reason, name) from None
    except Exception as error:  # Pillow's parsers raise many kinds on a hostile header
        reason = f"a damaged image header ({type(error).__name__})"
        raise ImageError(f"{name}: cannot read image ({reason})", reason, name) from None
    return ImageHeader(format_, width, height, frames, orientation, digest_of(data))


def read_image_file(path: str | Path) -> tuple[bytes, ImageHeader]:
    """A file's bytes, read through the guarded reader, and its checked header; an ImageError names the file."""
    try:
        data = read_bytes(path, MAX_IMAGE_FILE_BYTES, "image")
    except UnreadableFileError as error:
        raise ImageError(f"{path}: cannot read image ({error.reason})", error.reason, str(path)) from None
    return data, inspect_bytes(data, str(path))


def inspect_file(path: str | Path) -> ImageHeader:
    """`read_image_file`'s header only."""
    return read_image_file(path)[1]


def orientation_of(path: str | Path) -> int:
    """A file's EXIF orientation (1-8), from its header; 1 where it has none or cannot be opened."""
    try:
        with open_file(path, MAX_IMAGE_FILE_BYTES, "image") as file, _open(file) as image:
            value = int(image.getexif().get(EXIF_ORIENTATION_TAG, 1))
    except Exception:  # unreadable files are reported by the checks, not here
        return 1
    return value if value in range(1, 9) else 1


def is_tiff(data: bytes) -> bool:
    return data[:4] in TIFF_MAGIC


def _pixels(image: Image.Image) -> np.ndarray:
    """An opened image's first frame as RGB uint8: 16-bit values keep their top 8 bits (as TensorFlow does for a
    16-bit PNG), alpha is dropped."""
    if image.mode in _SIXTEEN_BIT_MODES:
        grey = (np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def decode_with_pillow(data) -> np.ndarray:
    """A file's first frame as RGB uint8 at its own resolution, not turned upright (for TIFF, which TensorFlow's
    decoder lacks). `data`: the file's bytes (or the 0-d object array `tf.numpy_function` hands over)."""
    if isinstance(data, np.ndarray):
        data = data.item()
    with _open(io.BytesIO(data)) as image:
        _header(image, data)
        return _pixels(image)


def decode_checked(data: bytes, name: str) -> tuple[np.ndarray, int]:
    """An image file's bytes checked as `inspect_bytes` does, then decoded from the same opening (the runtime's
    one pass over each photo): (RGB uint8 pixels at the file's own resolution, its EXIF orientation)."""
    if not data:
        raise ImageError(f"{name}: cannot read image (an empty file)", "an empty file", name)
    try:
        with _open(io.BytesIO(data)) as image:
            orientation = _header(image, data)[4]
            return _pixels(image), orientation
    except ImageError as error:
        raise ImageError(f"{name}: cannot read image ({error.reason})", error.reason, name) from None
    except Exception as error:  # Pillow's decoders: "image file is truncated", damaged headers, ...
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ImageError(f"{name}: cannot read image ({reason})", reason, name) from None
