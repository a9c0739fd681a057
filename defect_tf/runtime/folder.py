"""Labelling a whole folder into a CSV: streamed a batch at a time (memory stays flat however many photos), the
next batch decoding while one runs, unreadable files listed in the CSV with their reason, and a re-run that skips
what the CSV already holds. Rows go to `<csv>.partial` as they are made; the CSV itself appears, complete, only
when every photo has its row, so a killed run never leaves half a CSV, and the next run finishes the rest."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Callable

from defect_tf.data.image_files import find_images
from defect_tf.errors import DefectTFError
from defect_tf.io import output_folder
from defect_tf.io.files import atomic_write
from defect_tf.io.untrusted import UnreadableFileError, read_text
from defect_tf.limits import MAX_TEXT_FILE_BYTES
from defect_tf.runtime.inferencer import Inferencer

PARTIAL_SUFFIX = ".partial"
FIRST_COLUMNS = ("image", "status", "detected")  # then one probability column per attribute, then the error


def columns(attributes: list[str]) -> list[str]:
    return [*FIRST_COLUMNS, *(f"p_{name}" for name in attributes), "error"]


def _done(path: Path, header: list[str]) -> tuple[list[str], list[list[str]]]:
    """The complete rows a CSV (or its partial) holds: a last line cut short by a kill is dropped."""
    if not path.exists():
        return [], []
    try:
        text = read_text(path, MAX_TEXT_FILE_BYTES, "predictions file")
    except UnreadableFileError as error:
        raise DefectTFError(str(error)) from None
    if text and not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return [], []
    if rows[0] != header:
        raise DefectTFError(f"{path} holds the predictions of another model (its columns are "
                            f"{', '.join(rows[0][:6])}...); choose another --output")
    return [row[0] for row in rows[1:] if row], [row for row in rows[1:] if row]


def label_folder(inferencer: Inferencer, data: str | Path, output: str | Path,
                 progress: Callable[[int, int], Callable[[int], None]] | None = None) -> dict[str, int]:
    """Write a row per photo under `data` into the CSV `output`; returns counts (images, predicted, unreadable,
    skipped: already in the CSV). `progress(total, done)` returns a function told how many photos each batch held."""
    data, output = Path(data), Path(output)
    if not data.is_dir():
        raise DefectTFError(f"--data {data}: " + ("not a folder" if data.exists() else "folder not found"))
    parent, root = output.parent.resolve(), data.resolve()
    if parent == root or root in parent.parents:
        raise DefectTFError(f"--output {output} lies inside the photos' folder {data}; write it outside (the tool "
                            "never writes among your images)")
    partial = output.with_name(output.name + PARTIAL_SUFFIX)
    header = columns(inferencer.metadata.attributes)
    folder = output_folder.claim(output.parent if str(output.parent) else ".", [output.name, partial.name], "--output")
    with output_folder.locked(folder):
        done_names, done_rows = _done(partial if partial.exists() else output, header)
        done = set(done_names)
        images = [str(path) for path in find_images(data)]
        todo = [path for path in images if path not in done]
        # the partial starts as what is complete (a row a kill cut short is dropped), then grows a batch at a time
        atomic_write(partial, lambda temporary: _write_rows(temporary, header, done_rows))
        counts = {"images": len(images), "predicted": 0, "unreadable": 0, "skipped": len(images) - len(todo)}
        advance = progress(len(images), counts["skipped"]) if progress else (lambda count: None)
        with open(partial, "a", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            for predictions, errors in inferencer.predict_batches(todo):
                for prediction in predictions:
                    writer.writerow([prediction.image, "ok", ";".join(prediction.detected),
                                     *(f"{prediction.probabilities[name]:.6f}"
                                       for name in inferencer.metadata.attributes), ""])
                for error in errors:
                    writer.writerow([error.path, "unreadable", "", *([""] * len(inferencer.metadata.attributes)),
                                     error.reason or str(error)])
                file.flush()
                os.fsync(file.fileno())
                counts["predicted"] += len(predictions)
                counts["unreadable"] += len(errors)
                advance(len(predictions) + len(errors))
        os.replace(partial, output)
    return counts


def _write_rows(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
