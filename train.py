"""Train a multi-label defect classifier: python train.py --data images/ --labels labels.txt"""

from __future__ import annotations

import argparse
import sys

from defect_tf.cli import run
from defect_tf.backbones import BACKBONES
from defect_tf.training import TrainConfig, train

DEFAULTS = TrainConfig(data="", labels="")


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    d = DEFAULTS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", required=True, help="folder the label file's image paths are relative to")
    parser.add_argument("--labels", required=True, help="label file: header `image attr1 attr2 ...`, rows of 1/0/NA")
    parser.add_argument("--output", default=d.output, help="folder for the bundle, loss curve, history and metrics")
    parser.add_argument("--backbone", default=d.backbone, choices=sorted(BACKBONES), help="backbone architecture")
    parser.add_argument("--weights", default=d.weights,
                        help="imagenet, none (train from scratch) or a path to a backbone weights file")
    parser.add_argument("--image-size", type=int, default=d.image_size, help="images are resized to this square")
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--warmup-epochs", type=int, default=d.warmup_epochs, help="phase 1 epochs")
    parser.add_argument("--finetune-epochs", type=int, default=d.finetune_epochs,
                        help="phase 2 maximum epochs (early stopping may end it sooner)")
    parser.add_argument("--unfreeze", type=int, default=d.unfreeze,
                        help="backbone layers (from the top) trained in phase 2 with pretrained weights")
    parser.add_argument("--lr", type=float, default=d.lr, help="phase 1 learning rate (Adam)")
    parser.add_argument("--finetune-lr", type=float, default=d.finetune_lr, help="phase 2 learning rate (Adam)")
    parser.add_argument("--patience", type=int, default=d.patience, help="early-stopping patience in epochs")
    parser.add_argument("--gamma", type=float, default=d.gamma, help="focal loss gamma (0: masked cross-entropy)")
    parser.add_argument("--no-class-weights", dest="class_weights", action="store_false",
                        help="do not weight rare classes up")
    parser.add_argument("--no-cutout", dest="cutout", action="store_false", help="no Cutout augmentation")
    parser.add_argument("--dropout", type=float, default=d.dropout, help="dropout before the output layer")
    parser.add_argument("--precision", default=d.precision, choices=["auto", "float32", "mixed_float16", "mixed_bfloat16"],
                        help="auto: mixed_float16 when a GPU is visible, float32 otherwise")
    parser.add_argument("--seed", type=int, default=d.seed, help="fixes the split, shuffling and augmentation")
    return TrainConfig(**vars(parser.parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    train(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
