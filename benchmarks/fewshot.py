"""Few labels on NEU: the linear probe, the two-phase recipe (warm-up epochs) and LP-FT, over several draws.

    python benchmarks/fewshot.py                       # 5, 10, 25, 50 images per class and all; 3 draws each
    python benchmarks/fewshot.py --per-class 10 --draws 5
    python benchmarks/fewshot.py --backbone efficientnet_lite1 --per-class 5 10 --small-val train

Every arm is a pretrained EfficientNet-Lite (Lite0 unless `--backbone` says) at 128 px, scored on the same test
images (NEU's `split.txt`).
Draw d draws its images with seed d (few-shot: K per class from the split's train + val part, one in five of
them for validation; all: the split's own train part, val carved out with seed d) and trains with seed d.
Arms: `linear probe` (the head fitted on frozen features, nothing else: a logistic regression); `warm-up epochs`
(the recipe before LP-FT: head epochs on the frozen backbone, then fine-tuning); `LP-FT` (the probe, then the
same fine-tuning, starting from the probe's validation loss). `--small-val` as train.py's: with `train` the 6 and
12 validation images of 5 and 10 per class are trained on, with every epoch run (`auto`: with the probe only).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from common import (
    DEFAULT_DATA_ROOT,
    data_folder,
    number,
    record,
    run,
    shared_split,
    train_and_score,
    work_folder,
)
from transfer import FEWSHOT_EPOCHS, LITE_MODELS, LITE_RECIPE, fewshot_files

from defect_tf.data.labels import parse_labels
from defect_tf.data.splits import MIN_VALIDATION_IMAGES, SMALL_VALIDATION, read_split
from defect_tf.train.config import TrainConfig

FULL_EPOCHS = (LITE_RECIPE["warmup_epochs"], LITE_RECIPE["finetune_epochs"])  # with every labelled image
ARMS = {
    "linear probe": dict(linear_probe="on", warmup_epochs=0, finetune_epochs=0),
    "warm-up epochs": dict(linear_probe="off"),
    "LP-FT": dict(linear_probe="on", warmup_epochs=0),
}
PATIENCE = 10  # as benchmarks/transfer.py's few-shot arms
SMALL_VALIDATION_TEXT = {"hold-out": "held out for early stopping.", "train": "trained on, and every epoch runs.",
                         "auto": "trained on with the linear probe (every epoch runs), held out otherwise."}
SMALL_VALIDATION_RECORDS = {"hold-out": ("", ""), "train": ("_val_trained", ", small validation splits trained on"),
                            "auto": ("_val_auto", ", small validation splits trained on with the probe")}


def draw_files(folder: Path, labels: Path, count: str, draw: int, work: Path) -> tuple[Path, Path]:
    """The label and split files of one draw: `count` images per class, or "all"."""
    work.mkdir(parents=True, exist_ok=True)
    if count == "all":
        return labels, shared_split(folder, labels, work, draw)
    split_file = shared_split(folder, labels, work, 0)
    return fewshot_files(parse_labels(labels), read_split(split_file), int(count), work, draw)


def arm_config(base: TrainConfig, arm: str, count: str, labels: Path, split_file: Path, draw: int,
               output: Path) -> TrainConfig:
    """One arm's settings for one count and draw."""
    warmup, finetune = FULL_EPOCHS if count == "all" else FEWSHOT_EPOCHS
    return replace(base, **{"warmup_epochs": warmup, "finetune_epochs": finetune, **ARMS[arm]},
                   patience=base.patience if count == "all" else PATIENCE, labels=str(labels),
                   split_file=str(split_file), seed=draw, output=str(output))


def spread(values: list[float]) -> str:
    """mean ± standard deviation (min-max) of the draws."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{np.mean(values):.3f} ± {np.std(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def table(results: dict, arms: list[str], draws: int) -> list[str]:
    header = ["labelled images per class", *(f"{arm}: top-1" for arm in arms), *(f"{arm}: train time" for arm in arms)]
    rows = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for count, by_arm in results.items():
        accuracy = [spread([r["top1_accuracy"] for r in by_arm[arm]]) for arm in arms]
        seconds = [f"{np.mean([r['train_seconds'] for r in by_arm[arm]]):.0f} s" for arm in arms]
        best = max(range(len(arms)), key=lambda i: np.mean([r["top1_accuracy"] or 0 for r in by_arm[arms[i]]]))
        accuracy[best] = f"**{accuracy[best]}**"
        rows.append("| " + " | ".join([count, *accuracy, *seconds]) + " |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(DEFAULT_DATA_ROOT))
    parser.add_argument("--per-class", nargs="+", default=["5", "10", "25", "50", "all"])
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--backbone", default=LITE_MODELS[0], choices=LITE_MODELS)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--small-val", choices=SMALL_VALIDATION, default=TrainConfig(data="").small_validation)
    parser.add_argument("--work", help="folder for the runs (default: a temporary folder; a rerun there continues)")
    args = parser.parse_args(argv)
    folder = data_folder(args.data_root, "neu")
    labels = folder / "labels.txt"
    work = work_folder(args.work, "fewshot_")
    base = TrainConfig(data=str(folder / "images"), labels=str(labels), backbone=args.backbone,
                       image_size=args.image_size, batch_size=args.batch_size, small_validation=args.small_val,
                       **LITE_RECIPE)
    results: dict[str, dict[str, list]] = {}
    for count in args.per_class:
        results[count] = {arm: [] for arm in args.arms}
        for draw in range(args.draws):
            draw_work = work / f"{count}_draw{draw}"
            label_file, split_file = draw_files(folder, labels, count, draw, draw_work)
            for arm in args.arms:
                slug = arm.replace(" ", "_").replace("-", "")
                config = arm_config(base, arm, count, label_file, split_file, draw, draw_work / slug)
                result = train_and_score(config, labels, draw_work / f"{slug}.log")
                results[count][arm].append(result)
                print(f"{count} per class, draw {draw}, {arm}: top-1 {number(result['top1_accuracy'])}, "
                      f"{result['train_seconds']:.0f} s (log: {draw_work / slug}.log)", flush=True)
    tested = results[args.per_class[0]][args.arms[0]][0]["test_images"]
    intro = (f"NEU (`labels.txt`, six classes), pretrained `{args.backbone}`, {args.image_size} px, batch "
             f"{args.batch_size}; every arm scored on the same {tested} test images; "
             f"{args.draws} draws per count (images drawn and training seeded with 0..{args.draws - 1}), top-1 accuracy "
             "as mean ± standard deviation (lowest-highest). Few-shot arms: "
             f"{FEWSHOT_EPOCHS[0]} warm-up + up to {FEWSHOT_EPOCHS[1]} fine-tuning epochs (patience {PATIENCE}); all "
             f"labelled images: {FULL_EPOCHS[0]} + up to {FULL_EPOCHS[1]}. `linear probe`: the head fitted on frozen "
             "features alone; `warm-up epochs`: the recipe before LP-FT; `LP-FT`: the probe instead of the warm-up "
             "epochs, then the same fine-tuning. Train time: the probe's and the epochs' wall times, mean per run. "
             f"`--small-val {args.small_val}`: validation images, when fewer than {MIN_VALIDATION_IMAGES}, are "
             + SMALL_VALIDATION_TEXT[args.small_val])
    markdown = f"{intro}\n\n" + "\n".join(table(results, args.arms, args.draws))
    print(markdown)
    suffix, title = SMALL_VALIDATION_RECORDS[args.small_val]
    other_backbone = args.backbone != LITE_MODELS[0]
    record(f"fewshot_lpft_{args.backbone + '_' if other_backbone else ''}{args.image_size}px{suffix}",
           f"Few labels: linear probe vs warm-up epochs vs LP-FT, {args.backbone + ', ' if other_backbone else ''}"
           f"{args.image_size} px, {args.draws} draws{title}",
           markdown,
           {"settings": vars(args), "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
