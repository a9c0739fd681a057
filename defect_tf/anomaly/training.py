"""One localiser run: read and check the photos, fit on the intact train photos, set the thresholds on the
validation split, save the bundle, score the test split. Each phase prints a line; fitting shows a progress bar."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras

from defect_tf.anomaly.base import AnomalyMaps, AnomalyModel
from defect_tf.anomaly.calibration import Thresholds, calibrate
from defect_tf.anomaly.data import AnomalySet, mask_size_problems, read_anomaly_set
from defect_tf.anomaly.draem.model import DEFAULTS as DRAEM_DEFAULTS
from defect_tf.anomaly.evaluation import OUTLINES_FILE, SCORES_FILE, describe, score_localizer, true_mask
from defect_tf.anomaly.images import read_photo
from defect_tf.anomaly.metadata import LocalizerMetadata
from defect_tf.anomaly.patchcore.maps import DEFAULTS as PATCHCORE_DEFAULTS
from defect_tf.anomaly.registry import ANOMALY_MODELS, get_anomaly_model
from defect_tf.anomaly.store import DEFAULT_LOCALIZER_OUTPUT, Localizer, save_localizer
from defect_tf.data.checks import check_images
from defect_tf.errors import DefectTFError
from defect_tf.io import output_folder
from defect_tf.io.files import write_text
from defect_tf.io.untrusted import read_text
from defect_tf.limits import MAX_JSON_FILE_BYTES
from defect_tf.models.registry import BACKBONES
from defect_tf.progress_bar import progress_bar
from defect_tf.train.strategy import read_cluster

METRICS_FILE = "metrics.json"
SPLIT_FILE = "split.txt"
CHECKPOINT_DIR = "checkpoint"  # a model that learns over epochs saves its state here after each (anomaly/draem)
RUN_FILE = "run.json"  # in CHECKPOINT_DIR: the run's settings, so --resume needs only --output
OUTPUTS = ("bundle", METRICS_FILE, SPLIT_FILE, CHECKPOINT_DIR, OUTLINES_FILE, SCORES_FILE)


@dataclass
class LocalizerConfig:
    """Every setting of a localiser run; the defaults are the command line's."""

    data: str
    labels: str | None = None
    masks: str | None = None
    types: str | None = None
    split_file: str | None = None
    output: str = DEFAULT_LOCALIZER_OUTPUT
    model: str = "patchcore"
    backbone: str = "efficientnet_lite0"
    image_size: int | None = None  # None: the model's own default (anomaly/registry.py)
    coreset_size: int = PATCHCORE_DEFAULTS["coreset_size"]
    epochs: int = DRAEM_DEFAULTS["epochs"]
    seed: int = 0
    defect_head: bool = True  # PatchCore learns from the validation photos' defect masks where there are enough
    whole_defect_head: bool = False  # its head may also lower the map (only for defect types all among the masks)
    on_bad_image: str = "error"
    resume: bool = False

    def settings(self) -> dict:
        """The model's own settings this run sets (the rest are the model's defaults)."""
        if self.model == "draem":
            return {"epochs": self.epochs, "seed": self.seed}
        return {"backbone": self.backbone, "coreset_size": self.coreset_size, "seed": self.seed}

    def validate(self) -> None:
        problems = []
        if self.model not in ANOMALY_MODELS:
            problems.append(f"--model must be one of {', '.join(ANOMALY_MODELS)}, not {self.model!r}")
        if not 1 <= self.epochs <= 10_000:
            problems.append(f"--epochs must be from 1 to 10000, not {self.epochs}")
        if self.model == "patchcore" and (self.backbone not in BACKBONES or BACKBONES[self.backbone].imagenet is None):
            problems.append(f"--backbone {self.backbone}: PatchCore needs a pretrained backbone, e.g. "
                            "efficientnet_lite0")
        if self.image_size is not None and not 32 <= self.image_size <= 1024:
            problems.append(f"--image-size must be from 32 to 1024, not {self.image_size}")
        if not 100 <= self.coreset_size <= 1_000_000:
            problems.append(f"--coreset-size must be from 100 to 1000000, not {self.coreset_size}")
        if not Path(self.data).is_dir():
            problems.append(f"--data {self.data}: folder not found")
        if problems:
            raise DefectTFError("; ".join(problems))


def _check_photos(anomaly_set: AnomalySet, config: LocalizerConfig, log) -> AnomalySet:
    """Every photo decoded and every mask's size checked before fitting; bad photos stop the run (or are left out
    with --on-bad-image skip), listed together."""
    paths = [str(anomaly_set.path(row)) for row in range(len(anomaly_set.images))]
    headers, bad = check_images(paths)
    sizes = {}
    for row, image in enumerate(anomaly_set.images):
        header = headers.get(paths[row])
        if header is not None:
            upright = header.orientation in (5, 6, 7, 8)
            sizes[image] = (header.width, header.height) if upright else (header.height, header.width)
    problems = mask_size_problems(anomaly_set, sizes)
    if problems:
        raise DefectTFError(f"{len(problems)} mask(s) differ in size from their photo:\n" + "\n".join(problems[:20]))
    if bad and config.on_bad_image != "skip":
        listed = "\n".join(f"  {path}: {reason}" for path, reason in list(bad.items())[:20])
        raise DefectTFError(f"{len(bad)} photo(s) cannot be used (leave them out with --on-bad-image skip):\n{listed}")
    if bad:
        log(f"left out {len(bad)} unreadable photo(s), e.g. {next(iter(bad))}")
        keep = [row for row in range(len(anomaly_set.images)) if paths[row] not in bad]
        anomaly_set = AnomalySet(anomaly_set.data_dir, [anomaly_set.images[r] for r in keep],
                                 anomaly_set.defective[keep], anomaly_set.parts[keep], anomaly_set.masks,
                                 anomaly_set.types)
    return anomaly_set


def _absolute(path: str | None) -> str:
    return str(Path(path).resolve()) if path else ""


def _photos(anomaly_set: AnomalySet, rows: list[int], what: str):
    for row in progress_bar(rows, desc=what, unit="photo", leave=False):
        yield read_photo(anomaly_set.path(row))


def calibrated(model: AnomalyMaps, anomaly_set: AnomalySet, answers: tuple[list, list] | None = None) -> Thresholds:
    """The model's thresholds from the set's validation photos: intact ones, and defective ones where labelled;
    from their `answers` (intact, defective) when given, else from the model's."""
    if answers is None:
        answers = tuple([model.answer(photo) for photo in _photos(anomaly_set, anomaly_set.rows("val", defective),
                                                                    "thresholds")] for defective in (False, True))
    intact, defects = answers
    return calibrate([m for m, _ in intact], [s for _, s in intact], [s for _, s in defects])


def learnt_defects(model: AnomalyModel, anomaly_set: AnomalySet, log,
                   whole: bool = False) -> tuple[list, list] | None:
    """What the model learns from the validation photos' defect masks (AnomalyModel.learn_defects, `whole` passed
    on): their held-out answers for the thresholds, or None."""
    rows = anomaly_set.rows("val", True)
    if not model.learns_from_masks or not any(anomaly_set.images[row] in anomaly_set.masks for row in rows):
        return None
    intact = list(_photos(anomaly_set, anomaly_set.rows("val", False), "validation photos"))
    defects = list(_photos(anomaly_set, rows, "validation photos"))
    masks = [true_mask(anomaly_set, row, photo.shape[:2]) for row, photo in zip(rows, defects)]
    return model.learn_defects(intact, defects, masks, log, whole)


def saved_run(output: str | Path) -> LocalizerConfig:
    """The settings of the interrupted run in `output` (for --resume), or a DefectTFError saying why there is none."""
    path = Path(output) / CHECKPOINT_DIR / RUN_FILE
    if not path.is_file():
        raise DefectTFError(f"nothing to resume in {output}: no checkpoint (a run saves one as it starts "
                            "fitting; DRAEM's holds its last epoch)")
    try:
        settings = json.loads(read_text(path, MAX_JSON_FILE_BYTES, "checkpoint run file"))
        return LocalizerConfig(**{**settings, "output": str(output), "resume": True})
    except (DefectTFError, ValueError, TypeError) as error:
        raise DefectTFError(f"the checkpoint in {path.parent} is damaged ({error}); start a new run without "
                            "--resume") from None


def train_localizer(config: LocalizerConfig, log=print) -> dict:
    """Fit, calibrate, save and score a localiser; returns the test report (empty without test photos).
    With `config.resume`, the run in `config.output` continues from its checkpoint with its own settings."""
    cluster = read_cluster()
    if cluster and cluster.workers > 1:  # each machine would fit its own model into the same folder
        raise DefectTFError(f"TF_CONFIG names {cluster.workers} machines, but anomaly models train on one machine "
                            "(only classifiers train across machines): unset TF_CONFIG")
    if config.resume:
        config = saved_run(config.output)
    config.validate()
    output_folder.check_no_overlap(config.output, config.data)
    with output_folder.locked(config.output):
        output = output_folder.claim(config.output, OUTPUTS)
        return _run(config, output, log)


def _run(config: LocalizerConfig, output: Path, log) -> dict:
    started = time.time()
    keras.utils.set_random_seed(config.seed)
    anomaly_set = read_anomaly_set(config.data, config.labels, config.split_file, config.masks, config.types,
                                   config.seed)
    anomaly_set = _check_photos(anomaly_set, config, log)
    log(anomaly_set.describe())
    write_text(output / SPLIT_FILE, "image split\n" + "".join(
        f"{image} {part}\n" for image, part in zip(anomaly_set.images, anomaly_set.parts)))
    image_size = config.image_size or ANOMALY_MODELS[config.model].default_size
    model = get_anomaly_model(config.model)(image_size, config.settings())
    train_rows = anomaly_set.rows("train", False)
    checkpoint = output / CHECKPOINT_DIR
    if not config.resume:
        shutil.rmtree(checkpoint, ignore_errors=True)  # an earlier run's, claimed by this tool
        checkpoint.mkdir()
        paths = {name: _absolute(getattr(config, name)) or None for name in ("data", "labels", "masks", "types",
                                                                               "split_file")}
        write_text(checkpoint / RUN_FILE, json.dumps({**asdict(config), **paths, "resume": False}))
    described = config.backbone if config.model == "patchcore" else f"{model.settings['epochs']} epochs"
    log(f"fitting {config.model} ({described}, shorter side {image_size} px) on {len(train_rows)} intact photos")
    model.fit(_photos(anomaly_set, train_rows, "reading"), len(train_rows), log, checkpoint)
    fitted = time.time() - started + model.earlier_seconds

    learning = time.time()
    answers = learnt_defects(model, anomaly_set, log, config.whole_defect_head) if config.defect_head else None
    fitted += time.time() - learning  # the defect head, with its held-out answers to calibrate on
    thresholds = calibrated(model, anomaly_set, answers)
    log(f"thresholds ({thresholds.rule} rule, {len(anomaly_set.rows('val', False))} intact + "
        f"{len(anomaly_set.rows('val', True))} defective validation photos): image {thresholds.image:.4g}, "
        f"pixel {thresholds.pixel:.4g}")
    metadata = LocalizerMetadata(
        model=config.model, image_size=image_size, image_threshold=thresholds.image,
        pixel_threshold=thresholds.pixel, calibration=thresholds.rule, settings=model.settings,
        data_dir=str(Path(config.data).resolve()), labels_file=_absolute(config.labels),
        masks_dir=_absolute(config.masks), types_file=_absolute(config.types),
        split={part: [anomaly_set.images[r] for r in anomaly_set.rows(part)] for part in ("train", "val", "test")},
        trained_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
    location = save_localizer(output, model, metadata)
    shutil.rmtree(checkpoint, ignore_errors=True)
    log(f"saved the localiser to {location} (fitted in {fitted:.0f} s)")

    test_rows = anomaly_set.rows("test")
    if not test_rows:
        log("no test photos: nothing to score (hold some out with --split-file or label defective photos)")
        return {}
    gallery = output / OUTLINES_FILE
    report = score_localizer(Localizer(model, metadata, location), anomaly_set, test_rows, gallery=gallery,
                             score_plot=output / SCORES_FILE)
    report["fit_seconds"] = fitted
    write_text(output / METRICS_FILE, json.dumps(report, indent=1))
    log(f"test split ({output / METRICS_FILE}):\n{describe(report)}")
    if gallery.is_file():
        log(f"outlines against the true defects: {gallery}")
    if (output / SCORES_FILE).is_file():
        log(f"image scores against the threshold: {output / SCORES_FILE}")
    return report
