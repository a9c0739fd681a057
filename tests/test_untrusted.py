"""Every file the tool did not write is read through one guarded reader: regular files only, a size cap checked
before reading. A named pipe, a device or a link to one is one line with a reason, and nothing hangs: each test
here fails (SIGALRM) if a read blocks for more than a few seconds."""

import os
import signal
import socket
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defect_tf.apps import predict, train
from defect_tf.apps.cli import run
from defect_tf.data import image_files
from defect_tf.data.checks import unreadable_images
from defect_tf.data.image_files import inspect_bytes, inspect_file
from defect_tf.data.images import read_photo
from defect_tf.errors import ImageError
from defect_tf.io.untrusted import UnreadableFileError, check_file, read_bytes, read_text

SECONDS = 10


@pytest.fixture(autouse=True)
def no_hang():
    """Fail a test whose read blocks: an alarm interrupts the blocked call."""
    def hung(signum, frame):
        raise TimeoutError(f"blocked for {SECONDS} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(SECONDS)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def specials(tmp_path):
    """Paths that are not regular files: a FIFO, a device, links to both, a socket, a folder, a dangling link."""
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    (tmp_path / "pipe_link.png").symlink_to(tmp_path / "pipe.png")
    (tmp_path / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    (tmp_path / "folder.png").mkdir()
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "socket.png"))
    yield {"pipe.png": "a named pipe (FIFO), not a regular file", "zero.png": "a character device, not a regular file",
           "pipe_link.png": "a named pipe (FIFO), not a regular file", "dangling.png": "a symbolic link to nothing",
           "folder.png": "a folder, not a regular file", "socket.png": "a socket, not a regular file",
           "/dev/zero": "a character device, not a regular file"}
    server.close()


def test_the_reader_refuses_what_is_not_a_regular_file_from_its_status(tmp_path, specials):
    for name, reason in specials.items():
        with pytest.raises(UnreadableFileError) as error:
            read_bytes(tmp_path / name, 1000, "image")
        assert error.value.reason.startswith(reason), name


def test_a_file_over_its_cap_is_refused_before_a_byte_is_read(tmp_path):
    (tmp_path / "big.txt").write_bytes(b"x" * 1500)
    with pytest.raises(UnreadableFileError, match=r"1.5 kB, over the 1.0 kB limit for a label file"):
        read_text(tmp_path / "big.txt", 1000, "label file")
    assert check_file(tmp_path / "big.txt", 1500) == 1500


def test_text_that_is_not_utf8_says_where(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("image défaut\n".encode("latin-1"))
    with pytest.raises(UnreadableFileError, match=r"not UTF-8 text \(byte 7: b'\\xe9'\); save the label file as UTF-8"):
        read_text(tmp_path / "latin1.txt", 1000, "label file")


def test_every_special_file_as_an_image_to_check_is_listed_with_its_reason(tmp_path, specials):
    paths = [str(tmp_path / name) if not name.startswith("/") else name for name in specials]
    problems = unreadable_images(paths)
    assert {Path(path).name: reason for path, reason in problems.items()} == {
        Path(name).name: reason + ("; an image must be a regular file" if "regular" in reason else "")
        for name, reason in specials.items()}


def test_inference_on_special_files_is_one_line_each_and_exit_status_2(tmp_path, specials, untrained_output,
                                                                        capsys):
    paths = [str(tmp_path / name) for name in ("pipe.png", "zero.png", "pipe_link.png")] + ["/dev/zero"]
    status = run(lambda: predict.main([*paths, "--model", str(untrained_output)]))
    errors = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(errors) == 4 and all("not a regular file" in line for line in errors)


@pytest.mark.parametrize("name", ["pipe.png", "zero.png", "/dev/zero"])
def test_a_label_file_that_is_a_pipe_or_device_is_one_line(tmp_path, specials, tiny_demo, name, capsys):
    root, _ = tiny_demo
    labels = str(tmp_path / name) if not name.startswith("/") else name
    for argv in (["--check"], ["--output", str(tmp_path / "out"), "--weights", "none", "--backbone", "small_cnn"]):
        status = run(lambda: train.main(["--data", str(root / "images"), "--labels", labels, *argv]))
        stderr = capsys.readouterr().err
        assert status == 2 and len(stderr.strip().splitlines()) == 1 and "not a regular file" in stderr, stderr


def test_a_label_row_naming_a_pipe_is_a_bad_image_in_check(tmp_path, tiny_demo, capsys):
    root, _ = tiny_demo
    data = tmp_path / "data"
    data.mkdir()
    (data / "good.png").write_bytes((root / "images" / "surface_0000.png").read_bytes())
    os.mkfifo(data / "pipe.png")
    (data / "zero.png").symlink_to("/dev/zero")
    (tmp_path / "labels.txt").write_text("image dent\ngood.png 1\npipe.png 0\nzero.png 1\n")
    status = run(lambda: train.main(["--data", str(data), "--labels", str(tmp_path / "labels.txt"), "--check"]))
    out = capsys.readouterr().out
    assert status == 2 and "2 listed image(s) are missing or unreadable" in out
    assert "pipe.png: a named pipe (FIFO)" in out and "zero.png: a character device" in out


def gif(width: int, height: int, frames: int) -> bytes:
    """An animated GIF whose canvas is width x height with `frames` frames of one pixel each: a few bytes per frame,
    which a decoder that allocates every frame at the canvas size turns into frames x width x height x 3 bytes (the
    header says no more: frames drawn over the whole canvas compress as well)."""
    header = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + bytes(6)  # 2-colour palette
    loop = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    frame = b"\x21\xf9\x04\x00\x01\x00\x00\x00" + b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return header + loop + frame * frames + b"\x3b"


def test_an_animated_gif_bomb_is_refused_from_its_frames_before_decoding(tmp_path):
    bomb = tmp_path / "bomb.gif"
    bomb.write_bytes(gif(7000, 7000, 200))  # 200 frames of 49 megapixels: up to ~29 GB decoded
    assert bomb.stat().st_size < 6000
    with pytest.raises(ImageError, match=r"3 frames of 7000x7000 would decode to over 100 megapixels"):
        inspect_file(bomb)
    with pytest.raises(ImageError, match="would decode to over 100 megapixels"):
        read_photo(str(bomb))
    assert "frames of 7000x7000" in unreadable_images([str(bomb)])[str(bomb)]


def test_a_gif_within_the_budget_is_read_and_its_first_frame_used(tmp_path):
    path = tmp_path / "small.gif"
    frames = [Image.new("RGB", (40, 30), (255 * (i % 2), 0, 0)) for i in range(5)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    header = inspect_file(path)
    assert (header.format, header.width, header.height, header.frames) == ("GIF", 40, 30, 5)
    photo = read_photo(str(path))
    assert photo.shape == (30, 40, 3) and (photo[..., 0] < 10).all()  # the first frame: black, not red


def test_frames_are_counted_only_up_to_the_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(image_files, "MAX_IMAGE_FRAMES", 10)
    path = tmp_path / "many.gif"
    path.write_bytes(gif(8, 8, 50))
    with pytest.raises(ImageError, match="more than 10 frames of 8x8"):
        inspect_file(path)


@pytest.mark.parametrize("mode, expected", [("I;16", 0x12), ("L", 0x34), ("RGB", None), ("CMYK", None), ("P", None)])
def test_tiff_is_read_by_pillow_with_16_bits_kept_to_their_top_8(tmp_path, mode, expected):
    rgb = (np.random.default_rng(0).random((6, 5, 3)) * 255).astype(np.uint8)
    if mode == "I;16":
        image = Image.fromarray(np.full((6, 5), 0x1234, np.uint16))
    elif mode == "L":
        image = Image.fromarray(np.full((6, 5), 0x34, np.uint8))
    else:
        image = Image.fromarray(rgb).convert(mode)
    image.save(tmp_path / "photo.tif")
    photo = read_photo(str(tmp_path / "photo.tif"))
    assert photo.shape == (6, 5, 3) and photo.dtype == np.uint8
    if expected is not None:
        assert (photo == expected).all()
    elif mode == "RGB":
        np.testing.assert_array_equal(photo, rgb)


def test_a_float_tiff_is_refused_for_having_no_range(tmp_path):
    Image.fromarray(np.ones((4, 4), np.float32)).save(tmp_path / "depth.tif")
    with pytest.raises(ImageError, match="floating-point pixels have no fixed range"):
        inspect_file(tmp_path / "depth.tif")


def test_webp_reads_like_any_photo(tmp_path):
    rgb = np.full((9, 7, 3), (200, 30, 90), np.uint8)
    Image.fromarray(rgb).save(tmp_path / "photo.webp", lossless=True)
    np.testing.assert_array_equal(read_photo(str(tmp_path / "photo.webp")), rgb)


@pytest.mark.parametrize("data, reason", [(b"", "an empty file"), (b"hello", "not an image (JPEG, PNG"),
                                          (b"P6\n2 2\n255\n" + bytes(12), "a PPM image; the images this tool reads")])
def test_bytes_that_are_no_supported_image_say_why(data, reason):
    with pytest.raises(ImageError) as error:
        inspect_bytes(data, "x")
    assert error.value.reason.startswith(reason)


def test_a_png_whose_text_block_would_decompress_past_the_limit_is_refused(tmp_path):
    import io
    import zlib

    stream = io.BytesIO()
    Image.new("RGB", (8, 8)).save(stream, "PNG")
    png, data = stream.getvalue(), zlib.compress(bytes(4 << 20), 9)  # 4 MB of text in 4 kB

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    (tmp_path / "bomb.png").write_bytes(png[:33] + chunk(b"zTXt", b"Comment\x00\x00" + data) + png[33:])
    with pytest.raises(ImageError, match="a metadata block that would decompress past the limit"):
        read_photo(str(tmp_path / "bomb.png"))


@pytest.mark.parametrize("frames, size", [(1, (5, 4)), (3, (5, 4)), (12, (30, 20))])
def test_gif_frames_are_counted_from_the_blocks_as_pillow_counts_them(tmp_path, frames, size):
    from defect_tf.data.image_files import count_gif_frames

    pictures = [Image.new("RGB", size, (20 * index, 255 - 20 * index, 0)) for index in range(frames)]
    pictures[0].save(tmp_path / "a.gif", save_all=True, append_images=pictures[1:], comment=b"x" * 300)
    data = (tmp_path / "a.gif").read_bytes()
    assert count_gif_frames(data, 1000) == Image.open(tmp_path / "a.gif").n_frames == frames
    assert count_gif_frames(gif(7000, 7000, 200), 2) == 3  # stops one past the limit
