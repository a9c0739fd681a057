"""Where is the defect, on the magnetic tiles (`../shared/data/anomaly`): the anomaly localisers (PatchCore and
DRAEM), the classifier's own heatmap thresholded as a mask, and the two stages together, scored on the same test
photos.

A user starting out has many intact photos and a few labelled defects: here 20 of each of the 5 types (with their
masks), drawn from the data set's test split (seed 0); the rest of the test split (190 intact, 292 defective) is
scored. The localisers are fitted on the intact train photos only; the labelled defects set their thresholds (F1
rule), teach PatchCore's defect head with their masks (`--no-defect-head` leaves it out) and train the binary
classifier (Lite0, default recipe). Arms: each localiser alone (`patchcore`, `draem`);
`heatmap` (the classifier decides, its LayerCAM map is the anomaly map, the outline is where it reaches half its
peak); `two-stage` (the classifier decides, PatchCore outlines the photos it calls damaged). Image AUROC and F1 at
each method's threshold, pixel AUROC, PRO (to 30% false-positive rate), IoU and Dice of the outlines, coverage (the
share of each true defect region inside the outline, averaged over the regions), fit time, ms per photo.

    python benchmarks/anomaly.py [--models patchcore,draem] [--image-size 192] [--draem-image-size 128]
                                 [--draem-epochs 40] [--coreset-size 10000] [--no-defect-head] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from common import DEFAULT_DATA_ROOT, data_folder, number, record, run, work_folder

from defect_tf.anomaly.data import read_mask
from defect_tf.anomaly.evaluation import FIGURES, Scored, summarise
from defect_tf.anomaly.images import read_photo
from defect_tf.anomaly.registry import ANOMALY_MODELS
from defect_tf.anomaly.store import load_localizer
from defect_tf.anomaly.training import METRICS_FILE, LocalizerConfig, train_localizer
from defect_tf.bundle.store import load_bundle
from defect_tf.data.images import resize_image
from defect_tf.evaluate.metrics import INTERVAL_LEVEL
from defect_tf.explain.heatmap_scores import HEATMAP_LEVEL
from defect_tf.explain.heatmaps import GradCAM, upsample
from defect_tf.inference.predictor import predict_probabilities
from defect_tf.progress_bar import progress_bar
from defect_tf.train.config import TrainConfig
from defect_tf.train.trainer import train

PER_TYPE = ("image_auroc", "pixel_auroc", "pixel_ap", "iou", "coverage")
LABELLED_PER_TYPE = 20


def read_rows(path: Path) -> dict[str, str]:
    return dict(line.split() for line in path.read_text().splitlines()[1:] if line.strip())


def write_split(folder: Path, work: Path, seed: int) -> tuple[Path, list[str]]:
    """The benchmark's split: intact train photos (a tenth to val), the labelled defects (a fifth to val), the rest
    of the test split; returns the file and the test photos."""
    rng = np.random.default_rng(seed)
    split, types = read_rows(folder / "split.txt"), read_rows(folder / "types.txt")
    parts = dict(split)
    intact_train = sorted(image for image, part in split.items() if part == "train")
    for image in rng.permutation(intact_train)[:len(intact_train) // 10]:
        parts[str(image)] = "val"
    for kind in sorted(set(types.values()) - {"free"}):
        members = sorted(image for image in split if types[image] == kind and split[image] == "test")
        for order, image in enumerate(rng.choice(members, LABELLED_PER_TYPE, replace=False)):
            parts[str(image)] = "val" if order < LABELLED_PER_TYPE // 5 else "train"
    path = work / "split.txt"
    path.write_text("image split\n" + "".join(f"{image} {part}\n" for image, part in sorted(parts.items())))
    return path, sorted(image for image, part in parts.items() if part == "test")


def localizer_folder(work: Path, model: str, args) -> Path:
    if model == "patchcore":  # a fit with the defect head (the tool's default) is named apart from one without
        head = ("-head" + ("-whole" if getattr(args, "whole_defect_head", False) else "")
                if getattr(args, "defect_head", True) else "")
        return work / f"localizer-{args.image_size}-{args.coreset_size}{head}"
    return work / f"draem-{args.draem_image_size}-{args.draem_epochs}"


def fit_localizer(folder: Path, split: Path, output: Path, model: str, args) -> float:
    """Fit (or, with a checkpoint there, resume) the localiser; a finished one is read back."""
    if not (output / METRICS_FILE).is_file():
        resume = (output / "checkpoint" / "state.json").is_file()
        train_localizer(LocalizerConfig(
            data=str(folder / "images"), labels=str(folder / "labels.txt"), split_file=str(split),
            masks=str(folder / "masks"), types=str(folder / "types.txt"), output=str(output), model=model,
            image_size=args.image_size if model == "patchcore" else args.draem_image_size,
            coreset_size=args.coreset_size, epochs=args.draem_epochs, seed=args.seed,
            defect_head=getattr(args, "defect_head", True),
            whole_defect_head=getattr(args, "whole_defect_head", False), resume=resume))
    return json.loads((output / METRICS_FILE).read_text())["fit_seconds"]


def fit_classifier(folder: Path, split: Path, output: Path, args) -> float:
    if not (output / "metrics.json").is_file():
        started = time.time()
        train(TrainConfig(data=str(folder / "images"), labels=str(folder / "labels.txt"), task="binary",
                          split_file=str(split), backbone="efficientnet_lite0", output=str(output), seed=args.seed))
        (output / "train_seconds.txt").write_text(f"{time.time() - started:.1f}\n")
    return float((output / "train_seconds.txt").read_text())


def score_arms(folder: Path, test: list[str], classifier_dir: Path, localizer_dirs: dict[str, Path]) -> dict[str, dict]:
    """Every arm over the same test photos, each photo read once; the two stages use the first localiser."""
    labels, masks_dir = read_rows(folder / "labels.txt"), folder / "masks"
    bundle = load_bundle(classifier_dir)
    localizers = {name: load_localizer(path) for name, path in localizer_dirs.items()}
    second_stage = next(iter(localizers.values()))
    cam = GradCAM(bundle.model, bundle.metadata.backbone)
    threshold = float(bundle.thresholds[0])
    arms = {name: Scored() for name in (*localizers, "heatmap", "two-stage")}
    seconds = {name: 0.0 for name in arms}
    for image in progress_bar(test, desc="scoring", unit="photo"):
        defective = labels[image] == "1"
        photo = read_photo(folder / "images" / image)
        mask = read_mask(masks_dir / f"{Path(image).stem}.png") if defective else np.zeros(photo.shape[:2], bool)

        started = time.perf_counter()
        inputs = resize_image(photo, bundle.image_size).numpy()[None]
        probability = float(predict_probabilities(bundle.model, inputs, bundle.task)[0, 0])
        called = probability >= threshold
        classified = time.perf_counter() - started

        started = time.perf_counter()
        heatmap = upsample(cam.heatmaps(inputs[0], [0])[0], *photo.shape[:2])
        outline = heatmap >= HEATMAP_LEVEL * max(float(heatmap.max()), 1e-12) if called else np.zeros_like(mask)
        arms["heatmap"].add(image, defective, probability, called, heatmap, mask, outline)
        seconds["heatmap"] += classified + time.perf_counter() - started

        for name, localizer in localizers.items():
            started = time.perf_counter()
            found = localizer.locate(photo)
            seconds[name] += time.perf_counter() - started
            arms[name].add(image, defective, found.score, found.defective, found.anomaly_map, mask, found.mask)

        started = time.perf_counter()
        staged = second_stage.locate(photo, outline=True) if called else None
        seconds["two-stage"] += classified + time.perf_counter() - started
        arms["two-stage"].add(image, defective, probability, called,
                              staged.anomaly_map if staged else np.zeros(mask.shape, np.float32), mask,
                              staged.mask if staged else np.zeros_like(mask))
    types = read_rows(folder / "types.txt")
    return {name: {**summarise(scored, types), "ms_per_photo": 1000 * seconds[name] / len(test)}
            for name, scored in arms.items()}


def figure_cell(report: dict, key: str) -> str:
    """One figure of a report, with its interval where the report has one (image AUROC and AP, F1)."""
    low, high = report.get(f"{key}_low"), report.get(f"{key}_high")
    shown = low is not None and not np.isnan([low, high]).any()
    return number(report.get(key)) + (f" ({number(low)}-{number(high)})" if shown else "")


def table(reports: dict[str, dict], times: dict[str, str]) -> str:
    lines = ["| method | training | ms / photo | " + " | ".join(c.replace("_", " ") for c in FIGURES) + " |",
             "|---|---:|---:|" + "---:|" * len(FIGURES)]
    for name, report in reports.items():
        lines.append(f"| {name} | {times[name]} | {report['ms_per_photo']:.0f} | "
                     + " | ".join(figure_cell(report, c) for c in FIGURES) + " |")
    others = [f"{name} with its own ({function})" for key, name, function in
              (("image_ap", "image AP", "average_precision_intervals"), ("f1", "F1", "f1_interval"))
              if any(f"{key}_low" in report for report in reports.values())]
    note = (f"Image AUROC with its {INTERVAL_LEVEL:.0%} interval (evaluate/metrics.py: roc_auc_interval)"
            + "".join(f", {other}" for other in others) + ".")
    shown = any("image_auroc_low" in report for report in reports.values())
    return "\n".join(lines) + (f"\n\n{note}" if shown else "")


def per_type_table(reports: dict[str, dict]) -> str:
    kinds = list(next(iter(reports.values())).get("per_type", {}))
    heading = " / ".join(c.replace("_", " ").replace("auroc", "AUROC").replace(" ap", " AP").replace("iou", "IoU")
                          for c in PER_TYPE)
    lines = ["| defect type | " + " | ".join(f"{name}: {heading}" for name in reports) + " |",
             "|---|" + "---:|" * len(reports)]
    for kind in kinds:
        cells = [" / ".join(number(r["per_type"][kind].get(c)) for c in PER_TYPE)
                 for r in reports.values()]
        count = next(iter(reports.values()))["per_type"][kind]["defective"]
        lines.append(f"| {kind} ({count}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(DEFAULT_DATA_ROOT))
    parser.add_argument("--models", default="patchcore,draem", help="the localisers, the first one the second stage")
    parser.add_argument("--image-size", type=int, default=ANOMALY_MODELS["patchcore"].default_size,
                        help="PatchCore's shorter side")
    parser.add_argument("--coreset-size", type=int, default=LocalizerConfig.coreset_size)
    parser.add_argument("--draem-image-size", type=int, default=ANOMALY_MODELS["draem"].default_size,
                        help="DRAEM's shorter side")
    parser.add_argument("--draem-epochs", type=int, default=LocalizerConfig.epochs)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-defect-head", dest="defect_head", action="store_false",
                        help="PatchCore without the head learnt from the labelled defects' masks")
    parser.add_argument("--whole-defect-head", action="store_true",
                        help="the head's score not floored at 0: it may also lower the memory bank's map")
    parser.add_argument("--work", help="folder for the runs (a rerun there reads finished runs)")
    args = parser.parse_args(argv)
    if args.whole_defect_head and not args.defect_head:
        parser.error("--whole-defect-head needs the defect head: leave out --no-defect-head")
    folder = data_folder(args.data_root, "anomaly")
    work = work_folder(args.work, "anomaly-")
    split, test = write_split(folder, work, args.seed)
    models = args.models.split(",")
    localizer_dirs = {model: localizer_folder(work, model, args) for model in models}
    fits = {model: fit_localizer(folder, split, path, model, args) for model, path in localizer_dirs.items()}
    classifier_dir = work / "classifier"
    trained = fit_classifier(folder, split, classifier_dir, args)
    reports = score_arms(folder, test, classifier_dir, localizer_dirs)
    times = {**{model: f"{fit:.0f} s" for model, fit in fits.items()}, "heatmap": f"{trained:.0f} s",
             "two-stage": f"{fits[models[0]] + trained:.0f} s"}
    intact = sum(1 for image in test if read_rows(folder / "labels.txt")[image] == "0")
    described = {"patchcore": f"PatchCore (Lite0 features, shorter side {args.image_size} px, memory bank "
                              f"{args.coreset_size:,} rows" + (", a defect head learnt from the labelled defects' "
                                                                "masks" if args.defect_head else "")
                              + (", not floored" if args.defect_head and args.whole_defect_head else "") + ")",
                 "draem": f"DRAEM (base width 16, shorter side {args.draem_image_size} px, {args.draem_epochs} "
                          "epochs)"}
    markdown = (f"{len(test)} test photos ({intact} intact, {len(test) - intact} defective); the localisers: "
                f"{'; '.join(described[model] for model in models)}; the classifier binary Lite0 at its defaults, "
                f"the two stages it and {models[0]}. Pixel figures over every test photo (intact "
                f"ones: all-zero masks); IoU and Dice of the outlines, drawn only on photos called defective.\n\n"
                f"{table(reports, times)}\n\nPer defect type (each type's photos against the intact ones):\n\n"
                f"{per_type_table(reports)}")
    print(markdown)
    every = models == parser.get_default("models").split(",")  # a run of some localisers has its own section
    head = args.defect_head and "patchcore" in models
    whole = head and args.whole_defect_head
    record("anomaly" if every else f"anomaly_{'_'.join(models)}" + ("_head" if head else "") + ("_whole" if whole else ""),
           "Where is the defect: magnetic tiles, localiser vs heatmap vs two stages"
           + ("" if every else f" ({', '.join(models)} only" + (", with PatchCore's defect head" if head else "")
              + (", the whole head" if whole else "") + ")"),
           markdown, reports)
    return 0


if __name__ == "__main__":
    sys.exit(run(lambda: main()))
