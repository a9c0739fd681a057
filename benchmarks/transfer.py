"""Pretrained EfficientNet-Lite0 against small_cnn from scratch on NEU, on one shared split.

    python benchmarks/transfer.py --study accuracy   # every labelled image: accuracy and wall time, both arms
    python benchmarks/transfer.py --study fewshot    # 5, 10, 25, 50 labelled images per class; same test images
    python benchmarks/transfer.py --study unfreeze [--backbone efficientnet_lite1]   # warm-up only, then the
                                                     # top block / top two stages / all fine-tuned (default Lite0)
    python benchmarks/transfer.py --study lite       # EfficientNet-Lite0, Lite1 and Lite2 with every labelled image

Each arm follows its own recipe (`RECIPES`): Lite0 from its ImageNet weights with the two phases (head on a
frozen backbone, then the top layers at a lower learning rate, BatchNorm frozen); small_cnn from scratch as
the NEU accuracy benchmark trains it. Few-shot arms draw K images per class from the shared split's
train + val part (one in five of them, at least one per class, for validation) and are scored on the
whole shared test split.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from common import (
    DEFAULT_DATA_ROOT,
    comparison_table,
    data_folder,
    fewshot_parts,
    number,
    record,
    run,
    shared_split,
    test_images,
    train_and_score,
    work_folder,
)

from defect_tf.data.labels import format_labels, parse_labels
from defect_tf.data.splits import read_split, write_split
from defect_tf.models.classifier import build_classifier, top_layers
from defect_tf.models.efficientnet_lite import VARIANTS
from defect_tf.train.config import TrainConfig

LITE_RECIPE = dict(weights="imagenet", warmup_epochs=5, finetune_epochs=15, lr=1e-3, finetune_lr=1e-4)
LITE_MODELS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
RECIPES = {
    "efficientnet_lite0": dict(backbone="efficientnet_lite0", **LITE_RECIPE),
    "small_cnn": dict(backbone="small_cnn", weights="none", warmup_epochs=20, finetune_epochs=10, lr=1e-3,
                      finetune_lr=1e-4),
}
FEWSHOT_EPOCHS = (30, 30)  # warm-up, fine-tune: a few images give a few steps per epoch


def unfreeze_arms(backbone: str) -> dict[str, int | None]:
    """Phase 2's groups for a Lite model, as layer counts from its end (Lite0: 11 and 46; Lite1 and Lite2: 11, 55)."""
    lite, model = VARIANTS[backbone], build_classifier(backbone, 1, 64, None)
    return {"warm-up only": None, "top block": top_layers(model, f"block{sum(lite.repeats) - 1}_expand_conv"),
            "top two stages": top_layers(model, lite.top_two_stages), "all": 10_000}


def fewshot_files(table, split: dict[str, str], per_class: int, work: Path, seed: int) -> tuple[Path, Path]:
    """A label file and a split file holding `per_class` images of each class (train + val) and the test images."""
    parts = fewshot_parts(table, split, per_class, seed)
    chosen = [i for i, image in enumerate(table.images) if parts.get(image) in ("train", "val")]
    subset = table.subset(chosen + [i for i, image in enumerate(table.images) if parts.get(image) == "test"])
    labels, split_file = work / f"labels_{per_class}.txt", work / f"split_{per_class}.txt"
    labels.write_text(format_labels(subset), encoding="utf-8")
    write_split(split_file, subset.images, [parts[image] for image in subset.images])
    return labels, split_file


def study_arms(study: str, base: TrainConfig, names: list[str], per_class: list[int], work: Path,
               backbone: str = "efficientnet_lite0") -> dict:
    """arm name -> its training settings, for one study (few-shot arms get their label and split files in `work`)."""
    if study == "accuracy":
        return {name: replace(base, **RECIPES[name]) for name in names}
    if study == "lite":
        return {name: replace(base, backbone=name, **LITE_RECIPE) for name in LITE_MODELS}
    if study == "fewshot":
        table, split = parse_labels(base.labels), read_split(base.split_file)
        arms = {}
        for count in per_class:
            labels, split_file = fewshot_files(table, split, count, work, base.seed)
            for name in names:
                arms[f"{name}, {count} per class"] = replace(
                    base, **{**RECIPES[name], "warmup_epochs": FEWSHOT_EPOCHS[0], "finetune_epochs": FEWSHOT_EPOCHS[1]},
                    labels=str(labels), split_file=str(split_file), patience=10)
        return arms
    lite = replace(base, backbone=backbone, **LITE_RECIPE)
    return {name: replace(lite, finetune_epochs=0) if layers is None else replace(lite, unfreeze=layers)
            for name, layers in unfreeze_arms(backbone).items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", required=True, choices=["accuracy", "fewshot", "unfreeze", "lite"])
    parser.add_argument("--data-root", default=str(DEFAULT_DATA_ROOT))
    parser.add_argument("--arms", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--per-class", nargs="+", type=int, default=[5, 10, 25, 50])
    parser.add_argument("--backbone", default="efficientnet_lite0", choices=LITE_MODELS,
                        help="the Lite model whose phase-2 groups --study unfreeze compares")
    parser.add_argument("--lr", type=float, help="every arm's warm-up learning rate (default: its recipe's)")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", help="folder for the runs (default: a temporary folder)")
    args = parser.parse_args(argv)
    folder = data_folder(args.data_root, "neu")
    labels = folder / "labels.txt"
    work = work_folder(args.work, f"transfer_{args.study}_")
    split_file = shared_split(folder, labels, work, args.seed)
    base = TrainConfig(data=str(folder / "images"), labels=str(labels), image_size=args.image_size,
                       batch_size=args.batch_size, seed=args.seed, split_file=str(split_file))

    arms = study_arms(args.study, base, args.arms, args.per_class, work, args.backbone)
    if args.lr is not None:
        arms = {arm: replace(config, lr=args.lr) for arm, config in arms.items()}
    results = {}
    for arm, config in arms.items():
        slug = arm.replace(", ", "_").replace(" ", "_")
        config = replace(config, output=str(work / slug))
        print(f"{arm}: {config.backbone} ({config.weights} weights) (log: {work / slug}.log)", flush=True)
        results[arm] = train_and_score(config, config.labels, work / f"{slug}.log")
        print(f"  top-1 accuracy {number(results[arm]['top1_accuracy'])}, macro F1 {number(results[arm]['macro_f1'])}, "
              f"{results[arm]['train_seconds']:.0f} s", flush=True)

    def recipe(arm: str) -> str:
        config = arms[arm]
        weights = "ImageNet" if config.weights == "imagenet" else "from scratch"
        phases = f"{config.warmup_epochs} + {config.finetune_epochs} epochs, lr {config.lr:g} / {config.finetune_lr:g}"
        unfreeze = f", unfreeze {config.unfreeze}" if config.unfreeze is not None else ""
        return f"`{config.backbone}`, {weights}, {phases}{unfreeze}"

    extra = {"top-1 accuracy": lambda r: f"**{number(r['top1_accuracy'])}**"}
    if args.study == "lite":  # accuracy for the training time it cost
        extra["top-1 per minute of training"] = lambda r: number(r["top1_accuracy"] / r["train_seconds"] * 60)
    table = comparison_table(results, {"recipe": recipe}, extra)
    intro = (f"NEU (`labels.txt`, six classes), {args.image_size} px, batch {args.batch_size}, seed {args.seed}; "
             f"every arm scored on the same {test_images(results)} test images. Train time: the sum of the epochs' "
             "wall times (training and validation), on the machine below.")
    markdown = f"{intro}\n\n" + "\n".join(table)
    print(markdown)
    lr = "" if args.lr is None else f"_lr{args.lr:g}"
    title = ("Pretrained EfficientNet-Lite0, Lite1 and Lite2 on NEU" if args.study == "lite"
             else f"Pretrained EfficientNet-Lite0 vs small_cnn from scratch: {args.study}")
    other = args.study == "unfreeze" and args.backbone != "efficientnet_lite0"  # Lite0's record keeps its name
    if other:
        title = f"Pretrained {args.backbone}: which layers phase 2 fine-tunes"
    record(f"transfer_{args.study}_{args.backbone + '_' if other else ''}{args.image_size}px{lr}_seed{args.seed}",
           f"{title}, {args.image_size} px" + ("" if args.lr is None else f", warm-up lr {args.lr:g}"),
           markdown, {"settings": vars(args), "arms": results})
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
