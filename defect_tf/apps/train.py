"""Train a multi-label defect classifier: python train.py --data images/ --labels labels.txt

An interrupted run (Ctrl-C, SIGTERM, power loss) continues with: python train.py --resume [--output DIR]
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from defect_tf.apps.cli import EXIT_INTERRUPTED, EXIT_USER_ERROR, Parser, run
from defect_tf.data.augmentation import ROTATIONS
from defect_tf.data.checks import check_data
from defect_tf.data.labels import read_labels, summarize
from defect_tf.models.classifier import POOLING
from defect_tf.models.registry import BACKBONES
from defect_tf.train.checkpoints import CHECKPOINT_DIR, STATE_FILE
from defect_tf.train.config import TrainConfig
from defect_tf.train.dtype_policy import POLICIES
from defect_tf.train.trainer import resume_training, train

DEFAULTS = TrainConfig(data="", labels="")


def build_parser() -> argparse.ArgumentParser:
    d = DEFAULTS
    parser = Parser(description=__doc__)
    parser.add_argument("--data", metavar="DIR", help="folder the label file's image paths are relative to (required)")
    parser.add_argument("--labels", metavar="FILE",
                        help="label file: header `image attr1 attr2 ...`, rows of 1/0/NA (required)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted run in --output with its own settings")
    parser.add_argument("--check", action="store_true",
                        help="check the label file and every image, report all problems, and exit without training")
    parser.add_argument("--on-bad-image", choices=["error", "skip"], default=d.on_bad_image,
                        help="missing or unreadable images: stop before training and list them all (error), "
                             "or train without them and list them in OUTPUT/skipped_images.txt (skip)")
    parser.add_argument("--output", metavar="DIR", default=d.output,
                        help="folder for the bundle, loss curve, history and metrics")
    parser.add_argument("--backbone", default=d.backbone, choices=sorted(BACKBONES), help="backbone by name (defect_tf/models/registry.py): efficientnet_b0, efficientnet_lite0 (ImageNet weights with no network), small_cnn and small_cnn_hires (from scratch only; _hires for 384-640 px images with defects of a few pixels, with --pooling max)")
    parser.add_argument("--weights", metavar="imagenet|none|FILE", default=d.weights,
                        help="imagenet, none (train from scratch) or a path to a backbone weights file")
    parser.add_argument("--image-size", type=int, default=d.image_size, help="images are resized to this square")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help="images per training step")
    parser.add_argument("--warmup-epochs", type=int, default=d.warmup_epochs, help="phase 1 epochs")
    parser.add_argument("--finetune-epochs", type=int, default=d.finetune_epochs,
                        help="phase 2 maximum epochs (early stopping may end it sooner)")
    parser.add_argument("--unfreeze", type=int, default=d.unfreeze,
                        help="backbone layers (from the top) trained in phase 2 with pretrained weights (default: the "
                             "backbone's own, "
                             + ", ".join(f"{name} {spec.unfreeze}" for name, spec in sorted(BACKBONES.items())
                                         if spec.imagenet) + ")")
    parser.add_argument("--lr", type=float, default=d.lr, help="phase 1 learning rate (Adam)")
    parser.add_argument("--finetune-lr", type=float, default=d.finetune_lr, help="phase 2 learning rate (Adam)")
    parser.add_argument("--patience", type=int, default=d.patience, help="early stopping: epochs without a better validation loss")
    parser.add_argument("--gamma", type=float, default=d.gamma, help="focal-loss gamma: 0 is masked binary cross-entropy (it matched or beat gamma 2 in every loss ablation, docs/benchmarks.md); 2 down-weights easy examples")
    parser.add_argument("--no-class-weights", dest="class_weights", action="store_false",
                        help="do not weight rare classes up")
    parser.add_argument("--rotation", default=d.rotation, choices=ROTATIONS,
                        help="augmentation: free: any angle up to ±72°; quarter: exact quarter turns only, no interpolation "
                             "(square images with sharp edges, e.g. scanned boards)")
    parser.add_argument("--no-cutout", dest="cutout", action="store_false", help="no Cutout augmentation")
    parser.add_argument("--dropout", type=float, default=d.dropout, help="dropout before the output layer")
    parser.add_argument("--pooling", default=d.pooling, choices=sorted(POOLING),
                        help="global pooling of the backbone's features; max keeps a defect of a few pixels "
                             "from being averaged away")
    parser.add_argument("--precision", default=d.precision, choices=POLICIES,
                        help="auto: mixed_float16 when a GPU is visible, float32 otherwise")
    parser.add_argument("--seed", type=int, default=d.seed, help="fixes the split, shuffling and augmentation")
    parser.add_argument("--split-file", metavar="FILE", default=d.split_file,
                        help="use this `image split` file (train / val / test; without val rows, val is carved "
                             "out of train) instead of a new split, e.g. a data set's official split")
    return parser


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """The training settings from the command line (without --resume), checked: a bad value is a DefectTFError."""
    arguments = vars(build_parser().parse_args(argv))
    arguments.pop("resume")
    arguments.pop("check")
    config = TrainConfig(**arguments)
    config.validate()
    return config


def check(data: str, labels: str) -> int:
    """`--check`: report every problem with the labels and images; exit status 2 if training would stop."""
    table, label_problems = read_labels(labels)
    print(summarize(table))
    report = check_data(data, table)
    if report.describe_warnings():
        print(report.describe_warnings())
    if label_problems:
        print(f"{len(label_problems)} problem(s) in {labels}:")
        print("\n".join(f"  {problem}" for problem in label_problems))
    if report.bad_images:
        print(report.describe_bad_images())
    if label_problems or report.bad_images:
        return EXIT_USER_ERROR
    print(f"ok: {len(table.images)} images listed, all readable")
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.resume and not (args.data and args.labels):
        parser.error("--data and --labels are required (or --resume to continue an interrupted run)")
    if args.check:
        return check(args.data, args.labels)
    config = None if args.resume else parse_args(argv)  # every flag checked before any work
    signal.signal(signal.SIGTERM, _interrupt)  # a polite kill ends like Ctrl-C, after the epoch's checkpoint
    try:
        if args.resume:
            resume_training(args.output)
        else:
            train(config)
    except KeyboardInterrupt:
        if (Path(args.output) / CHECKPOINT_DIR / STATE_FILE).is_file():
            print(f"interrupted; continue from the last completed epoch with: python train.py --resume --output "
                  f"{args.output}", file=sys.stderr)
        else:
            print("interrupted before the first epoch finished: there is nothing to resume; run the same command "
                  "again to start over", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
