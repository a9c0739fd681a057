"""Training recipes against the project's defaults on NEU as one folder per class (multi-class), one split.

    python benchmarks/recipes.py                           # every labelled image
    python benchmarks/recipes.py --per-class 10 --seed 1   # 10 labelled images per class (train + val)
    python benchmarks/recipes.py --arms defaults "sibling recipe"

NEU's label file becomes a folder per class of symbolic links in the work folder (never in the repository);
every arm is `python train.py --data <that folder>` with its recipe's flags, on the same split, scored on the
same test images: accuracy, macro F1, wall time. The sibling recipe is the NEU paper's (spatial attention, an
MLP head, focal loss, AdamW with cosine decay, heavy augmentation) on the project's backbone; its focal
alpha 0.75 is left out because under softmax it scales every class alike, which Adam's updates cancel.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

import common

from defect_tf.data.labels import LabelTable, parse_labels
from defect_tf.data.splits import read_split, write_split
from defect_tf.train.config import TrainConfig

SIBLING = dict(head="mlp", attention="spatial", gamma=2.0, optimizer="adamw", schedule="cosine", augment="heavy")
ARMS = {
    "defaults": {},
    "AdamW + cosine": dict(optimizer="adamw", schedule="cosine"),
    "EMA": dict(ema=True),
    "MixUp 0.2": dict(mixup=0.2),
    "balanced sampler": dict(sampler="balanced"),
    "label smoothing 0.1": dict(label_smoothing=0.1),
    "focal gamma 2": dict(gamma=2.0),
    "heavy augmentation": dict(augment="heavy"),
    "MLP head + spatial attention": dict(head="mlp", attention="spatial"),
    "sibling recipe": SIBLING,
}
# The sibling systems' own backbones: Keras's ImageNet weights for them can't be downloaded on this project's
# machines, so here they start from scratch (opt in with --arms; far slower per epoch on a CPU).
FROM_SCRATCH = {
    "sibling recipe, ResNet-50 from scratch": dict(SIBLING, backbone="resnet50", weights="none"),
    "ConvNeXt-Tiny from scratch": dict(backbone="convnext_tiny", weights="none"),
    "ConvNeXt-Tiny from scratch + EMA": dict(backbone="convnext_tiny", weights="none", ema=True),
}
FULL_EPOCHS, FEWSHOT_EPOCHS = (5, 15), (30, 30)  # warm-up, fine-tune (as benchmarks/transfer.py)


def class_folders(table: LabelTable, images: Path, rows: list[int], folder: Path) -> dict[str, str]:
    """`folder/<class>/<image>` links to the chosen rows' images; returns image -> its path in `folder`."""
    places = {}
    for row in rows:
        name, image = table.attributes[int(np.argmax(table.values[row]))], table.images[row]
        link = folder / name / image
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            os.symlink((images / image).resolve(), link)
        places[image] = f"{name}/{image}"
    return places


def arm_data(folder: Path, per_class: int | None, work: Path, seed: int) -> tuple[Path, Path]:
    """The class-folder copy of NEU (all of it, or `per_class` train + val images of each class and every test
    image) and its split file, in class-folder paths."""
    table = parse_labels(folder / "labels.txt")
    split = read_split(common.shared_split(folder, folder / "labels.txt", work, seed))
    parts = common.fewshot_parts(table, split, per_class, seed) if per_class else split
    rows = [i for i, image in enumerate(table.images) if image in parts]
    by_class = work / ("neu_by_class" if not per_class else f"neu_{per_class}_per_class")
    places = class_folders(table, folder / "images", rows, by_class)
    split_file = work / f"{by_class.name}_split.txt"
    write_split(split_file, [places[image] for image in places], [parts[image] for image in places])
    return by_class, split_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(common.DEFAULT_DATA_ROOT))
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=[*ARMS, *FROM_SCRATCH])
    parser.add_argument("--per-class", type=int, help="train + val images per class (default: every image)")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", help="folder for the runs (default: a temporary folder)")
    args = parser.parse_args(argv)
    folder = common.data_folder(args.data_root, "neu")
    work = common.work_folder(args.work, "recipes_")
    data, split_file = arm_data(folder, args.per_class, work, args.seed)
    warmup, finetune = FEWSHOT_EPOCHS if args.per_class else FULL_EPOCHS
    base = TrainConfig(data=str(data), backbone=args.backbone, image_size=args.image_size, batch_size=args.batch_size,
                       warmup_epochs=warmup, finetune_epochs=finetune, patience=10 if args.per_class else 5,
                       seed=args.seed, split_file=str(split_file))

    results = {}
    for arm in args.arms:
        slug = arm.lower().replace(" + ", "_").replace(", ", "_").replace(" ", "_").replace(".", "")
        flags = {**ARMS, **FROM_SCRATCH}[arm]
        config = replace(base, **flags, output=str(work / slug))
        print(f"{arm}: {flags or 'the defaults'} (log: {work / slug}.log)", flush=True)
        result = common.train_and_score(config, None, work / f"{slug}.log")
        report = result.get("report") or {}
        results[arm] = {"accuracy": report.get("accuracy"), "macro_f1": (report.get("macro") or {}).get("f1"),
                        "test_images": report.get("images"), "epochs": result["epochs"],
                        "train_seconds": result["train_seconds"], "failed": result.get("failed")}
        figures = results[arm]
        print(f"  accuracy {common.number(figures['accuracy'])}, macro F1 {common.number(figures['macro_f1'])}, "
              f"{result['train_seconds']:.0f} s", flush=True)

    rows = ["| arm | flags | accuracy | macro F1 | epochs | train time |", "|---|---|---:|---:|---:|---:|"]
    for arm, r in results.items():
        flags = " ".join(f"`--{key.replace('_', '-')} {value}`" if value is not True else f"`--{key}`"
                         for key, value in {**ARMS, **FROM_SCRATCH}[arm].items()) or "(none)"
        rows.append(f"| {arm} | {flags} | {common.number(r['accuracy'])} | {common.number(r['macro_f1'])} | "
                    f"{r['epochs']} | {r['train_seconds']:.0f} s |")
    images = next((r["test_images"] for r in results.values() if r["test_images"]), "-")
    amount = f"{args.per_class} labelled images per class (train + val)" if args.per_class else "every labelled image"
    intro = (f"NEU as one folder per class (multi-class), {amount}; `{args.backbone}` from its ImageNet weights "
             "unless an arm says otherwise, "
             f"{args.image_size} px, batch {args.batch_size}, {warmup} + up to {finetune} epochs, seed {args.seed}; "
             f"every arm scored on the same {images} test images. Train time: the sum of the epochs' wall times.")
    markdown = f"{intro}\n\n" + "\n".join(rows) + "".join(
        f"\n\n{arm}: {r['failed']}" for arm, r in results.items() if r.get("failed"))
    print(markdown)
    amount_name = f"{args.per_class}_per_class" if args.per_class else "all"
    scratch_only = all(arm in FROM_SCRATCH for arm in args.arms)  # its own section: the recipes' table stays
    common.record(f"recipes_neu_{args.backbone}_{args.image_size}px_{amount_name}_seed{args.seed}"
                  + ("_from_scratch" if scratch_only else ""),
                  f"Recipes on NEU by class: {args.backbone}, {args.image_size} px, "
                  f"{f'{args.per_class} per class' if args.per_class else 'every image'}, seed {args.seed}"
                  + (", sibling backbones from scratch" if scratch_only else ""),
                  markdown, {"settings": vars(args), "arms": results})
    return 0


if __name__ == "__main__":
    sys.exit(common.run(main))
