"""What a bundle says about its model (`bundle.json`): one typed, versioned record, read through one migration path.

Every reader uses these fields instead of dictionary keys. A later format adds its migration to
`MIGRATIONS` (old format -> a function returning the next format's dict), so old bundles keep loading.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Callable

from defect_tf.errors import BundleError
from defect_tf.tasks import DEFAULT_TASK, TASKS

FORMAT = "defect_tf.bundle/2"
# format -> function(dict) -> dict of the next format
MIGRATIONS: dict[str, Callable[[dict], dict]] = {
    # format 1 predates tasks: every bundle was multi-label
    "defect_tf.bundle/1": lambda data: {**data, "task": "multilabel", "format": "defect_tf.bundle/2"},
}
REQUIRED = ("attributes", "image_size", "thresholds")


@dataclass
class BundleMetadata:
    """The model's contract (attributes, input size, thresholds) and how it was made. Fields other than the
    first three are empty for a bundle saved outside a training run (tests, benchmarks)."""

    attributes: list[str]
    image_size: int
    thresholds: list[float]  # one per attribute; empty for a task that decides without them (multiclass)
    task: str = DEFAULT_TASK
    untrained: list[str] = field(default_factory=list)  # attributes without a known training label: never detected
    backbone: str = ""
    pretrained: bool = False
    precision: str = ""
    label_header_fingerprint: str = ""
    settings: dict = field(default_factory=dict)  # every TrainConfig field (JSON)
    data_dir: str = ""
    labels_file: str = ""
    split: dict[str, list[str]] = field(default_factory=dict)  # part -> image names
    epochs_trained: int = 0
    trained_at: str = ""
    versions: dict[str, str] = field(default_factory=dict)  # library versions at saving
    format: str = FORMAT

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data, where: str) -> BundleMetadata:
        """The record a `bundle.json` holds, migrated to the current format; `where` names the file in errors."""
        found = data.get("format") if isinstance(data, dict) else None
        while found in MIGRATIONS:
            data = MIGRATIONS[found](data)
            found = data.get("format")
        if found != FORMAT:
            raise BundleError(f"{where}: not a {FORMAT} bundle (format {found!r})")
        missing = [key for key in REQUIRED if key not in data]
        if missing:
            raise BundleError(f"{where}: incomplete bundle metadata (no {', '.join(missing)})")
        if data.get("task", DEFAULT_TASK) not in TASKS:
            raise BundleError(f"{where}: the model's task {data['task']!r} is not one this version knows "
                              f"({', '.join(TASKS)}); was it made by a newer defect_tf?")
        known = {item.name for item in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})
