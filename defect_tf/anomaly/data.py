"""The photos an anomaly model learns from and is judged on: intact photos to fit, a validation split to set its
thresholds, a test split to score it, defect masks and types where they are known.

Two layouts: a folder of intact photos (`--data` alone: every image under it is intact), or a label file with one
attribute (0 intact, 1 defective, NA left out). Masks: `--masks DIR` holding `<image stem>.png` for defective
photos (non-zero = defect), each the size of its photo. The split: a split file (`image train|val|test`; without
val, VAL_SHARE of the intact train photos become val) or a seeded one. Defective photos are never fitted on: those
in train or val calibrate the thresholds, those in test are scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from defect_tf.data.image_files import find_images, inspect_file
from defect_tf.data.labels import normalise_image_path, parse_labels, read_label_text
from defect_tf.data.splits import read_split
from defect_tf.errors import DefectTFError, ImageError, LabelError
from defect_tf.io.untrusted import UnreadableFileError, read_bytes
from defect_tf.limits import MAX_IMAGE_FILE_BYTES

VAL_SHARE = 0.1  # of intact photos, for the thresholds
TEST_SHARE = 0.1  # of intact photos, with a seeded split (defective ones: half val, half test)
MIN_VAL_INTACT = 5


@dataclass
class AnomalySet:
    data_dir: Path
    images: list[str]
    defective: np.ndarray  # bool per image
    parts: np.ndarray  # "train" / "val" / "test" per image
    masks: dict[str, Path] = field(default_factory=dict)  # image -> mask file (defective photos with one)
    types: dict[str, str] = field(default_factory=dict)  # image -> defect type (for the report)

    def rows(self, part: str, defective: bool | None = None) -> list[int]:
        keep = self.parts == part
        if defective is not None:
            keep &= self.defective == defective
        return list(np.flatnonzero(keep))

    def path(self, row: int) -> Path:
        return self.data_dir / self.images[row]

    def describe(self) -> str:
        counts = []
        for part in ("train", "val", "test"):
            intact, defective = len(self.rows(part, False)), len(self.rows(part, True))
            counts.append(f"{part} {intact} intact" + (f" + {defective} defective" if defective else ""))
        masks = f"; {len(self.masks)} defect masks" if self.masks else ""
        return f"{len(self.images)} photos: " + ", ".join(counts) + masks


def _read_pairs(path: str | Path, what: str) -> dict[str, str]:
    """`image value` rows after a header line (a types file)."""
    pairs = {}
    for line in read_label_text(path, what).splitlines()[1:]:
        fields = line.strip().rsplit(maxsplit=1)
        if len(fields) == 2:
            pairs[normalise_image_path(fields[0])] = fields[1]
    return pairs


def _labels(data: Path, labels: str | None) -> tuple[list[str], np.ndarray]:
    if labels is None:
        images = [path.relative_to(data).as_posix() for path in find_images(data)]
        if not images:
            raise DefectTFError(f"--data {data}: no images found (JPEG, PNG, BMP, GIF, WebP or TIFF)")
        return images, np.zeros(len(images), bool)
    table = parse_labels(labels)
    if len(table.attributes) != 1:
        raise LabelError(f"{labels}: an anomaly model needs one attribute (1 defective, 0 intact), not "
                         f"{len(table.attributes)} ({', '.join(table.attributes[:5])})")
    known = table.values[:, 0] >= 0
    return [image for image, keep in zip(table.images, known) if keep], table.values[known, 0] == 1


def _seeded_parts(defective: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    parts = np.full(len(defective), "train", dtype=object)
    intact = rng.permutation(np.flatnonzero(~defective))
    n_val = max(MIN_VAL_INTACT, round(VAL_SHARE * len(intact)))
    n_test = round(TEST_SHARE * len(intact))
    parts[intact[:n_val]] = "val"
    parts[intact[n_val:n_val + n_test]] = "test"
    broken = rng.permutation(np.flatnonzero(defective))
    parts[broken[:len(broken) // 2]] = "val"
    parts[broken[len(broken) // 2:]] = "test"
    return parts.astype(str)


def _file_parts(split_file: str, images: list[str], defective: np.ndarray, seed: int) -> np.ndarray:
    saved = read_split(split_file)
    missing = [image for image in images if image not in saved]
    if missing:
        raise DefectTFError(f"the split file {split_file} leaves out {len(missing)} photo(s), e.g. "
                            f"{', '.join(missing[:5])}")
    parts = np.asarray([saved[image] for image in images], dtype=object)
    parts[defective & (parts == "train")] = "val"  # never fitted on
    if not np.any((parts == "val") & ~defective):
        train = np.random.default_rng(seed).permutation(np.flatnonzero((parts == "train") & ~defective))
        parts[train[:max(MIN_VAL_INTACT, round(VAL_SHARE * len(train)))]] = "val"
    return parts.astype(str)


def read_mask(path: Path) -> np.ndarray:
    """A mask image as booleans (non-zero = defect), through the guarded reader."""
    import io

    try:
        data = read_bytes(path, MAX_IMAGE_FILE_BYTES, "mask")
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("L")) > 0
    except UnreadableFileError as error:
        raise DefectTFError(f"{path}: cannot read the mask ({error.reason})") from None
    except (OSError, ValueError) as error:
        raise DefectTFError(f"{path}: cannot read the mask ({error})") from None


def read_anomaly_set(data: str, labels: str | None = None, split_file: str | None = None,
                     masks: str | None = None, types: str | None = None, seed: int = 0,
                     require_train: bool = True) -> AnomalySet:
    """The photos, their intact / defective labels, split, masks and types, checked as far as reading them goes."""
    root = Path(data)
    images, defective = _labels(root, labels)
    parts = _file_parts(split_file, images, defective, seed) if split_file else _seeded_parts(defective, seed)
    found = {}
    if masks is not None:
        folder = Path(masks)
        if not folder.is_dir():
            raise DefectTFError(f"--masks {masks}: folder not found")
        for image, broken in zip(images, defective):
            candidate = folder / (Path(image).with_suffix(".png"))
            if broken and candidate.is_file():
                found[image] = candidate
    kinds = _read_pairs(types, "types file") if types else {}
    anomaly_set = AnomalySet(root, images, defective, parts, found, kinds)
    if require_train and not anomaly_set.rows("train", False):
        raise DefectTFError("no intact photos to learn from in the train split (label 0, or --data alone: a folder "
                            "of intact photos)")
    return anomaly_set


def mask_size_problems(anomaly_set: AnomalySet, sizes: dict[str, tuple[int, int]]) -> list[str]:
    """Masks whose size differs from their photo's (upright height, width in `sizes`), by file name."""
    problems = []
    for image, mask_path in anomaly_set.masks.items():
        if image not in sizes:
            continue
        try:
            header = inspect_file(mask_path)
        except ImageError as error:
            problems.append(f"{mask_path}: cannot read the mask ({error.reason or error})")
            continue
        shape = (header.height, header.width)
        if shape != sizes[image]:
            problems.append(f"{mask_path}: {shape[1]}x{shape[0]} px, but {image} is "
                            f"{sizes[image][1]}x{sizes[image][0]} px")
    return problems
