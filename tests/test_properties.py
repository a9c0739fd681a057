"""Property-based tests (Hypothesis): generated label files, split files, class-folder trees and image files, each
held to the rule every reader keeps. A command ends with exit status 0 or 2, and on 2 with one `error:` line on
stderr (followed, where a file has several mistakes, by one line per mistake); no traceback; nothing written outside
the tool's own output folder; no hang (each example within a stated bound). The image check and the image reader
agree: a file the check passes is read, one it refuses is refused, never decoded beyond the pixel budget."""

import io
import os
import struct
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from defect_tf.apps import train
from defect_tf.apps.cli import run
from defect_tf.data.checks import unreadable_images
from defect_tf.data.images import read_photo
from defect_tf.data.labels import NA_SPELLINGS
from defect_tf.data.splits import SPLITS, read_split, split_from_parts
from defect_tf.errors import DefectTFError, ImageError
from defect_tf.limits import MAX_IMAGE_PIXELS
from defect_tf.train import trainer

SECONDS_PER_EXAMPLE = 30


def png_bytes(size=(6, 5), colour=(120, 30, 200)) -> bytes:
    stream = io.BytesIO()
    Image.new("RGB", size, colour).save(stream, "PNG")
    return stream.getvalue()


def snapshot(folder: Path, leave_out: Path | None = None) -> dict[str, tuple]:
    """Every entry under `folder` (but `leave_out`): its kind, size and modification time."""
    entries = {}
    for path in folder.rglob("*"):
        if leave_out is not None and (path == leave_out or leave_out in path.parents):
            continue
        status = path.lstat()
        entries[str(path.relative_to(folder))] = (status.st_mode, status.st_size, status.st_mtime_ns)
    return entries


def command(argv: list[str], capsys) -> tuple[int, str]:
    """Run train.py in this process as its script does: (exit status, stderr)."""
    try:
        status = run(lambda: train.main(argv))
    except SystemExit as stop:
        status = stop.code
    return status, capsys.readouterr().err


def assert_the_rule(status: int, stderr: str, started: float) -> None:
    assert status in (0, 2), stderr
    assert "Traceback" not in stderr and 'File "' not in stderr, stderr
    if status == 2 and stderr.strip():  # (--check reports its findings on stdout and ends with 2)
        first, *mistakes = stderr.strip().splitlines()
        assert first.startswith("error: ") or first.startswith("train.py: error: ") or ": error: " in first, stderr
        assert all(line.strip() and not line.startswith("error") for line in mistakes), stderr
    assert time.monotonic() - started < SECONDS_PER_EXAMPLE


# Label files: headers and rows from pieces real files have, mistakes and oddities included.
names = st.sampled_from(["a.png", "b.png", "c.png", "d.png", "broken.png", "missing.png", "../outside.png",
                         "/abs/x.png", "sub/../a.png", "a b.png", "ä.png", "", "image"])
values = st.sampled_from(["1", "0", *NA_SPELLINGS, "NA", "2", "yes", "", "0.5", "1e0"])
attribute_names = st.lists(st.sampled_from(["scratch", "dent", "crack", "NA", "1", "a,b", "défaut", "x y", ""]),
                           max_size=4)


@st.composite
def label_texts(draw) -> bytes:
    """Half of them as a careful user writes them (right field counts, known values), half with every mistake."""
    separator = draw(st.sampled_from([" ", "\t", ",", ", ", "  "]))
    if draw(st.booleans()):
        attributes = draw(st.lists(st.sampled_from(["scratch", "dent", "crack"]), min_size=1, max_size=3, unique=True))
        images = draw(st.lists(st.sampled_from(["a.png", "b.png", "c.png", "d.png", "broken.png", "missing.png"]),
                               min_size=1, max_size=6, unique=True))
        header = separator.join(["image", *attributes])
        rows = [separator.join([image, *(draw(st.sampled_from(["1", "0", "NA"])) for _ in attributes)])
                for image in images]
    else:
        header = separator.join(["image", *draw(attribute_names)])
        rows = [separator.join([draw(names), *draw(st.lists(values, max_size=5))])
                for _ in range(draw(st.integers(0, 8)))]
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = newline.join([header, *rows]) + draw(st.sampled_from(["", newline, newline * 3]))
    data = (b"\xef\xbb\xbf" if draw(st.booleans()) else b"") + text.encode("utf-8")
    return data + draw(st.sampled_from([b"", b"", b"", b"\xff\xfe junk", b"\x00"]))


@pytest.fixture(scope="module")
def workspace():
    """A data folder of four good images and one broken one, and an empty current folder."""
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        (root / "data").mkdir()
        for index, name in enumerate("abcd"):
            (root / "data" / f"{name}.png").write_bytes(png_bytes(colour=(40 * index, 0, 0)))
        (root / "data" / "broken.png").write_bytes(png_bytes()[:30])
        (root / "work").mkdir()
        yield root


class ValidationPassed(Exception):
    """Raised where training would start building the input pipeline: every check before it passed."""


@settings(max_examples=40)
@given(text=label_texts(), task=st.sampled_from([None, "multilabel", "binary", "multiclass"]))
def test_any_label_file_checks_in_one_line_and_writes_nothing(text, task, workspace, capsys, monkeypatch):
    monkeypatch.chdir(workspace / "work")
    labels = workspace / "labels.txt"
    labels.write_bytes(text)
    before = snapshot(workspace)
    task_flags = ["--task", task] if task else []
    started = time.monotonic()
    status, stderr = command(["--data", str(workspace / "data"), "--labels", str(labels), "--check", *task_flags],
                             capsys)
    assert_the_rule(status, stderr, started)
    assert snapshot(workspace) == before


@settings(max_examples=25)
@given(text=label_texts(), task=st.sampled_from([None, "binary"]))
def test_training_on_any_label_file_stops_in_one_line_or_gets_to_the_pipeline_writing_only_its_output(
        text, task, workspace, capsys, monkeypatch):
    monkeypatch.chdir(workspace / "work")
    monkeypatch.setattr(trainer, "make_dataset", lambda *args, **kwargs: (_ for _ in ()).throw(ValidationPassed()))
    labels, output = workspace / "labels.txt", workspace / "out"
    labels.write_bytes(text)
    before = snapshot(workspace, leave_out=output)
    started = time.monotonic()
    try:
        status, stderr = command(["--data", str(workspace / "data"), "--labels", str(labels), "--output", str(output),
                                  "--backbone", "small_cnn", "--weights", "none", "--image-size", "32",
                                  "--on-bad-image", "skip", *(["--task", task] if task else [])], capsys)
        assert_the_rule(status, stderr, started)
    except ValidationPassed:
        pass
    assert snapshot(workspace, leave_out=output) == before


@settings(max_examples=100)
@given(lines=st.lists(st.one_of(st.tuples(names, st.sampled_from([*SPLITS, "TEST", "holdout", ""])).map(" ".join),
                                st.text(max_size=20)), max_size=10),
       header=st.sampled_from(["image split", "", "split image"]))
def test_any_split_file_gives_a_split_of_every_image_or_one_error(lines, header, tmp_path_factory):
    folder = tmp_path_factory.mktemp("split")
    (folder / "split.txt").write_text("\n".join([header, *lines]), encoding="utf-8")
    images = ["a.png", "b.png", "c.png", "d.png"]
    values = np.array([[1], [0], [1], [0]], np.float32)
    try:
        split = split_from_parts(read_split(folder / "split.txt"), images, values)
    except DefectTFError as error:
        assert str(error)
        return
    assert len(split) == len(images) and set(split) <= set(SPLITS)


# Class-folder trees: class names that do and don't say "defect", parts, hidden and empty folders, files of every kind.
folder_names = st.sampled_from(["good", "ok", "scratch", "dent", "defective", "train", "val", "test", ".hidden",
                                "a b", "défaut", "NG"])
file_kinds = st.sampled_from(["png", "empty", "garbage", "txt", "webp", "hidden", "link_up", "fifo"])


def trees(depth: int = 2):
    leaf = st.lists(st.tuples(st.sampled_from(["1", "2", "x"]), file_kinds), max_size=3)
    if depth == 0:
        return leaf.map(lambda files: {"files": files, "folders": {}})
    return st.fixed_dictionaries({"files": leaf, "folders": st.dictionaries(folder_names, trees(depth - 1),
                                                                            max_size=3)})


def build(tree: dict, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, kind in tree["files"]:
        path = folder / ({"png": f"{stem}.png", "empty": f"{stem}_e.png", "garbage": f"{stem}_g.jpg",
                          "txt": f"{stem}.txt", "webp": f"{stem}.webp", "hidden": f".{stem}.png",
                          "link_up": f"{stem}_up", "fifo": f"{stem}_p.png"}[kind])
        if path.exists() or path.is_symlink():
            continue
        if kind == "png":
            path.write_bytes(png_bytes())
        elif kind == "webp":
            Image.new("RGB", (4, 4)).save(path, "WEBP")
        elif kind == "garbage":
            path.write_bytes(os.urandom(64))
        elif kind == "link_up":
            path.symlink_to(folder)  # a link loop
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            path.write_bytes(b"" if kind in ("empty", "hidden") else b"notes")
    for name, subtree in tree["folders"].items():
        build(subtree, folder / name)


@settings(max_examples=25)
@given(tree=trees(), task=st.sampled_from([None, "binary", "multilabel"]))
def test_any_class_folder_tree_checks_in_one_line_and_writes_nothing(tree, task, capsys, monkeypatch):
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        build(tree, root / "data")
        (root / "work").mkdir()
        monkeypatch.chdir(root / "work")
        before = snapshot(root)
        started = time.monotonic()
        status, stderr = command(["--data", str(root / "data"), "--check", *(["--task", task] if task else [])],
                                 capsys)
        assert_the_rule(status, stderr, started)
        assert snapshot(root) == before


# Image files: every format and mode, then truncated, bytes flipped, or the header's size made huge.
@st.composite
def image_files(draw) -> bytes:
    kind = draw(st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"]))
    mode = draw(st.sampled_from({"PNG": ["RGB", "RGBA", "L", "P", "I;16", "1", "LA"], "JPEG": ["RGB", "L", "CMYK"],
                                 "GIF": ["P", "L"], "BMP": ["RGB", "L", "P", "1"],
                                 "TIFF": ["RGB", "RGBA", "L", "I;16", "CMYK", "1"], "WEBP": ["RGB", "RGBA"]}[kind]))
    width, height = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    rng = np.random.default_rng(draw(st.integers(0, 1000)))
    frames = [Image.fromarray((rng.random((height, width, 3)) * 255).astype(np.uint8)).convert(
        "RGB" if mode == "I;16" else mode) for _ in range(draw(st.integers(1, 3)) if kind in ("GIF", "TIFF") else 1)]
    if mode == "I;16":
        frames = [Image.fromarray((rng.random((height, width)) * 65535).astype(np.uint16))]
    stream = io.BytesIO()
    frames[0].save(stream, kind, save_all=len(frames) > 1, append_images=frames[1:])
    data = stream.getvalue()
    change = draw(st.sampled_from(["none", "truncate", "flip", "huge"]))
    if change == "truncate":
        data = data[:draw(st.integers(0, len(data) - 1))]
    elif change == "flip":
        position = draw(st.integers(0, len(data) - 1))
        data = data[:position] + bytes([data[position] ^ draw(st.integers(1, 255))]) + data[position + 1:]
    elif change == "huge" and kind == "PNG":
        size = draw(st.sampled_from([(60000, 60000), (10001, 10000), (2**31 - 1, 1)]))
        chunk = b"IHDR" + struct.pack(">II", *size) + data[24:29]
        data = data[:12] + chunk + struct.pack(">I", zlib.crc32(chunk)) + data[33:]
    return data


@settings(max_examples=40)
@given(data=image_files())
def test_the_image_check_and_the_reader_agree_and_never_decode_past_the_budget(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("image") / "photo.img"
    path.write_bytes(data)
    started = time.monotonic()
    problems = unreadable_images([str(path)])
    try:
        photo = read_photo(str(path))
    except ImageError as error:
        assert str(path) in problems, f"the check passed a file the reader refuses: {error}"
        assert len(str(error).splitlines()) == 1
    else:
        assert str(path) not in problems, problems
        assert photo.ndim == 3 and photo.shape[2] == 3 and photo.dtype == np.uint8
        assert photo.shape[0] * photo.shape[1] <= MAX_IMAGE_PIXELS
    assert time.monotonic() - started < SECONDS_PER_EXAMPLE
