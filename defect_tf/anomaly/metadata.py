"""What a localiser bundle says about its model (`bundle.json` with format `defect_tf.localizer/N`): a typed,
versioned, checked record, read without TensorFlow, kept apart from the classifier's (bundle/metadata.py) because
an anomaly model does not answer per attribute: it answers with a map."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Callable

from defect_tf.anomaly.registry import ANOMALY_MODELS
from defect_tf.bundle.layout import LOCALIZER_PREFIX
from defect_tf.bundle.metadata import export_problems, migrated
from defect_tf.errors import BundleError

FORMAT = f"{LOCALIZER_PREFIX}3"
# format -> function(dict) -> dict of the next format. /2: PatchCore's settings may hold the place statistics its
# map is measured against (anomaly/patchcore/maps.py); a /1 bundle has none, so its maps stay the raw distances.
# /3: PatchCore's settings may name a defect head (anomaly/patchcore/head.py) added to its map; a /2 bundle has
# none. A tool that knows only an older format refuses a newer bundle rather than misreading its maps.
MIGRATIONS: dict[str, Callable[[dict], dict]] = {
    f"{LOCALIZER_PREFIX}1": lambda old: {**old, "format": f"{LOCALIZER_PREFIX}2"},
    f"{LOCALIZER_PREFIX}2": lambda old: {**old, "format": FORMAT},
}
INPUT_RULE = ("RGB, upright by EXIF, antialiased bilinear resize keeping the aspect ratio: shorter side image_size, "
              "both sides rounded to multiples of 32, float32 0-255")
IMAGE_SIZES = (32, 2048)


@dataclass
class LocalizerMetadata:
    """The localiser's contract (model, input size, the two thresholds) and how it was made."""

    model: str  # a name of anomaly/registry.py
    image_size: int  # the shorter side of its input
    image_threshold: float  # a photo is defective when its score reaches this
    pixel_threshold: float  # its outline: the pixels whose score reaches this
    calibration: str = ""  # the rule that set them (anomaly/calibration.py)
    settings: dict = field(default_factory=dict)  # the model's own settings (backbone, levels, coreset size, ...)
    data_dir: str = ""
    labels_file: str = ""
    masks_dir: str = ""
    types_file: str = ""
    split: dict[str, list[str]] = field(default_factory=dict)
    trained_at: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)
    exports: dict[str, dict] = field(default_factory=dict)  # format -> ExportRecord (anomaly/runtimes.py runs it)
    input_rule: str = INPUT_RULE
    format: str = FORMAT

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data, where: str) -> LocalizerMetadata:
        data, found = migrated(data, MIGRATIONS)
        if found != FORMAT:
            raise BundleError(f"{where}: not a {FORMAT} localiser (format {found!r})")
        missing = [name for name in ("model", "image_size", "image_threshold", "pixel_threshold") if name not in data]
        if missing:
            raise BundleError(f"{where}: incomplete localiser metadata (no {', '.join(missing)})")
        known = {item.name for item in fields(cls)}
        metadata = cls(**{key: value for key, value in data.items() if key in known})
        problems = metadata.problems()
        if problems:
            raise BundleError(f"{where}: localiser metadata that cannot be used: {'; '.join(problems)}")
        return metadata

    def problems(self) -> list[str]:
        problems = []
        if self.model not in ANOMALY_MODELS:
            problems.append(f"model {str(self.model)[:40]!r} is not one this version knows "
                            f"({', '.join(ANOMALY_MODELS)})")
        size = self.image_size
        if isinstance(size, bool) or not isinstance(size, int) or not IMAGE_SIZES[0] <= size <= IMAGE_SIZES[1]:
            problems.append(f"image_size must be a whole number from {IMAGE_SIZES[0]} to {IMAGE_SIZES[1]}")
        for name in ("image_threshold", "pixel_threshold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                problems.append(f"{name} must be a finite number")
        for name in ("settings", "split", "checksums", "versions", "exports"):
            if not isinstance(getattr(self, name), dict):
                problems.append(f"{name} must be a mapping")
        return problems + export_problems(self.exports)
