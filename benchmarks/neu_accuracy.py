"""Accuracy on NEU steel surface defects, trained from scratch (no pretrained weights offline).

    python benchmarks/neu_accuracy.py [--data-root ../shared/data] [--image-size 128] [--warmup-epochs 20 ...]

NEU is single-label (one-hot labels.txt), so besides macro F1 and exact match the headline figure is
top-1 accuracy: the highest-scoring class is the true one. Seeded stratified 70 / 15 / 15 split.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import add_data_options, data_folder, number, record, run, train_and_score, work_folder

from defect_tf.train.config import TrainConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_options(parser, backbone="small_cnn", image_size=128, batch_size=32)
    parser.add_argument("--warmup-epochs", type=int, default=20)
    parser.add_argument("--finetune-epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--finetune-lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", help="folder for the run (default: a temporary folder)")
    args = parser.parse_args(argv)
    folder = data_folder(args.data_root, "neu")
    work = work_folder(args.work, "neu_accuracy_")
    config = TrainConfig(data=str(folder / "images"), labels=str(folder / "labels.txt"), output=str(work),
                         backbone=args.backbone, weights="none", image_size=args.image_size,
                         batch_size=args.batch_size, warmup_epochs=args.warmup_epochs,
                         finetune_epochs=args.finetune_epochs, lr=args.lr, finetune_lr=args.finetune_lr,
                         seed=args.seed)
    print(f"training in {work} (log: {work}.log)", flush=True)
    result = train_and_score(config, folder / "labels.txt", Path(f"{work}.log"))
    markdown = (
        f"`{args.backbone}` from scratch, {args.image_size} px, batch {args.batch_size}, "
        f"{args.warmup_epochs} + up to {args.finetune_epochs} epochs (lr {args.lr}, then {args.finetune_lr} with "
        f"early stopping), default augmentation, seed {args.seed}; test split {result['test_images']} images.\n\n"
        "| top-1 accuracy | macro F1 (calibrated) | exact match | epochs run | wall time (training) |\n"
        "|---:|---:|---:|---:|---:|\n"
        f"| **{number(result['top1_accuracy'])}** | {number(result['macro_f1'])} | {number(result['exact_match'])} | "
        f"{result['epochs']} | {result['train_seconds'] / 60:.1f} min |")
    print(markdown)
    record(f"neu_accuracy_{args.image_size}", f"NEU accuracy from scratch, {args.image_size} px", markdown,
           {"settings": vars(args), **result})
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
