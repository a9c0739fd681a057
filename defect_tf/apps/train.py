"""Train a defect classifier: python train.py --data images/ --labels labels.txt (multi-label attributes),
or python train.py --data images/ with one sub-folder per class (multi-class; --task binary for two folders).
An anomaly localiser from intact photos: python train.py --task anomaly --data intact/ (its flags: --task
anomaly --help).

An interrupted run (Ctrl-C, SIGTERM, power loss) continues with: python train.py --resume [--output DIR]
"""

from __future__ import annotations

import argparse
import signal
import sys

from defect_tf.apps import train_anomaly
from defect_tf.apps.cli import EXIT_INTERRUPTED, EXIT_USER_ERROR, Parser, run
from defect_tf.data.augmentation import HEAVY_SHARE, MIXUP_ALPHA, PRESETS, ROTATIONS
from defect_tf.data.cache import CACHE_CHOICES
from defect_tf.data.checks import DataReport, check_data
from defect_tf.data.sampling import SAMPLERS
from defect_tf.data.sources import read_source
from defect_tf.data.splits import MIN_VALIDATION_IMAGES, SMALL_VALIDATION
from defect_tf.models.heads import ATTENTION, HEADS, POOLING
from defect_tf.models.registry import BACKBONES
from defect_tf.tasks import TASKS, task_labels
from defect_tf.train.config import TrainConfig
from defect_tf.train.dtype_policy import POLICIES
from defect_tf.train.head_fit import PROBE_CHOICES
from defect_tf.train.label_filling import FILL_PRECISION
from defect_tf.train.optimizers import OPTIMIZERS, SCHEDULES
from defect_tf.train.progress import RunProgress
from defect_tf.train.strategy import STRATEGIES
from defect_tf.train.trainer import resume_training, train
from defect_tf.train.worker_loop import WorkerLost

DEFAULTS = TrainConfig(data="")
ANOMALY_TASK = "anomaly"  # not a classifier task: apps/train_anomaly.py
CHECK_FLAGS = ("--check", "--data", "--labels", "--task", "--positive")  # what --check reads


SOURCE_HELP = ("the images: the label file's paths are relative to it; without --labels, one sub-folder per class "
               "(required)")


def add_source_flags(group, d: TrainConfig, tasks: list[str], data_help: str = SOURCE_HELP) -> None:
    """Where the images and labels come from, which task and how they are split: train.py's and prepare's."""
    group.add_argument("--data", metavar="DIR", help=data_help)
    group.add_argument("--labels", metavar="FILE",
                       help="label file (`image attr1 attr2 ...`, rows of 1/0/NA) or `image,class` CSV")
    group.add_argument("--task", default=d.task, choices=tasks,
                       help="multilabel: attributes per image; multiclass: one class each; binary: defect or not "
                            "(default: multiclass for class folders or a class CSV)"
                            + ("; anomaly: a localiser trained on intact photos, with flags of its own"
                               if ANOMALY_TASK in tasks else ""))
    group.add_argument("--positive", metavar="CLASS", default=d.positive,
                       help="--task binary from two class folders or a class CSV: the defect class (default: the "
                            "names tell, e.g. not good or ok)")
    group.add_argument("--on-bad-image", choices=["error", "skip"], default=d.on_bad_image,
                       help="missing or unreadable images: stop, listing all (error), or leave them out, listed in "
                            "OUTPUT/skipped_images.txt (skip)")
    group.add_argument("--split-file", metavar="FILE", default=d.split_file,
                       help="`image split` rows (train / val / test; val carved out of train if absent) instead "
                            "of a new split")
    group.add_argument("--image-size", type=int, default=d.image_size, help="images are resized to this square")


def build_parser() -> argparse.ArgumentParser:
    d = DEFAULTS
    parser = Parser(description=__doc__)
    data = parser.add_argument_group("data")
    add_source_flags(data, d, [*TASKS, ANOMALY_TASK],
                     SOURCE_HELP[:-1] + "; or a folder of shards written by defect-tf prepare)")
    data.add_argument("--check", action="store_true",
                      help="check the label file and every image, report all problems, and exit without training")
    data.add_argument("--small-val", dest="small_validation", choices=SMALL_VALIDATION, default=d.small_validation,
                      help=f"a pretrained run with fewer than {MIN_VALIDATION_IMAGES} validation images: train on them "
                           "too, every epoch run and thresholds 0.5 (train), hold them out for early stopping and "
                           "calibration (hold-out), or train on them with --linear-probe on only (auto)")
    data.add_argument("--fill-na", type=int, default=d.fill_na, metavar="ROUNDS",
                      help="multilabel: after training, fill the training images' NA cells in where the model is "
                           f"right {FILL_PRECISION:.0%} of the time on the validation labels, and train again from "
                           "the start; ROUNDS times (each costs a whole run; 2 measured better than 1: "
                           "docs/findings.md)")

    model = parser.add_argument_group("model")
    model.add_argument("--backbone", default=d.backbone, choices=sorted(BACKBONES),
                       help="small_cnn*: from scratch only; efficientnet_lite0/1/2: ImageNet weights with no network")
    model.add_argument("--weights", metavar="imagenet|none|FILE", default=d.weights,
                       help="imagenet, none (train from scratch) or a path to a backbone weights file")
    model.add_argument("--head", default=d.head, choices=HEADS,
                       help="linear: pooled features -> logits; mlp: adds Dense 512 + ReLU before the logits")
    model.add_argument("--attention", default=d.attention, choices=ATTENTION,
                       help="spatial: gate the feature map with a learnt 7x7 map of where to look, before pooling")
    model.add_argument("--pooling", default=d.pooling, choices=sorted(POOLING),
                       help="max keeps a defect of a few pixels from being averaged away")
    model.add_argument("--dropout", type=float, default=d.dropout, help="dropout before the output layer")

    training = parser.add_argument_group("training (two phases)")
    training.add_argument("--linear-probe", default=d.linear_probe, choices=PROBE_CHOICES,
                          help="on: phase 1 fits the linear head to convergence on the frozen pretrained features "
                               "(LP-FT) instead of --warmup-epochs: ahead with 25 labelled images per class, behind "
                               "with 5 or 10 (docs/benchmarks.md)")
    training.add_argument("--warmup-epochs", type=int, default=d.warmup_epochs,
                          help="phase 1 epochs (without --linear-probe on)")
    training.add_argument("--finetune-epochs", type=int, default=d.finetune_epochs,
                          help="phase 2 maximum epochs (early stopping may end it sooner)")
    training.add_argument("--unfreeze", type=int, default=d.unfreeze,
                          help="pretrained backbone layers (from the top) trained in phase 2 (default: its top "
                               "stage)")
    training.add_argument("--lr", type=float, default=d.lr, help="phase 1 learning rate (a schedule's peak)")
    training.add_argument("--finetune-lr", type=float, default=d.finetune_lr, help="phase 2 learning rate")
    training.add_argument("--optimizer", default=d.optimizer, choices=OPTIMIZERS, help="adamw: Adam with decoupled "
                          "weight decay")
    training.add_argument("--schedule", default=d.schedule, choices=SCHEDULES,
                          help="cosine: per phase, a linear warm-up over a tenth, then a cosine to 0")
    training.add_argument("--weight-decay", type=float, default=d.weight_decay, help="for AdamW")
    training.add_argument("--ema", action="store_true",
                          help="validate, early-stop on and save a moving average of the weights")
    training.add_argument("--sampler", default=d.sampler, choices=SAMPLERS,
                          help="balanced: batches draw each class equally often, instead of class weights")
    training.add_argument("--patience", type=int, default=d.patience,
                          help="early stopping: epochs without a better validation loss")
    training.add_argument("--batch-size", type=int, default=d.batch_size, help="images per training step")
    training.add_argument("--precision", default=d.precision, choices=POLICIES,
                          help="auto: mixed_float16 with a GPU, else float32")
    training.add_argument("--seed", type=int, default=d.seed, help="fixes split, shuffling and augmentation")
    training.add_argument("--strategy", default=d.strategy, choices=STRATEGIES,
                          help="auto: multiworker when TF_CONFIG names several machines, else mirrored over the "
                               "local GPUs when there are several, else one device; --batch-size is the global "
                               "batch, split over the replicas (docs/scaling.md)")
    training.add_argument("--cache", default=d.cache, choices=CACHE_CHOICES,
                          help="where decoded images wait between epochs; auto: in memory while they fit in half "
                               "the free memory, else on disk in the output folder (removed when the run ends)")

    loss = parser.add_argument_group("loss and augmentation")
    loss.add_argument("--gamma", type=float, default=d.gamma,
                      help="focal-loss gamma: 0 is cross-entropy (it matched or beat 2 in every ablation)")
    loss.add_argument("--alpha", type=float, default=d.alpha,
                      help="multilabel / binary focal alpha: positives weigh alpha, negatives 1 - alpha")
    loss.add_argument("--no-class-weights", dest="class_weights", action="store_false",
                      help="do not weight rare classes up")
    loss.add_argument("--label-smoothing", type=float, default=d.label_smoothing,
                      help="multiclass: move this share of each target evenly onto every class")
    loss.add_argument("--rotation", default=d.rotation, choices=ROTATIONS,
                      help="free: any angle up to ±72°; quarter: exact quarter turns, no interpolation (e.g. "
                           "scanned boards)")
    loss.add_argument("--no-cutout", dest="cutout", action="store_false", help="no Cutout augmentation")
    loss.add_argument("--augment", default=d.augment, choices=PRESETS,
                      help=f"heavy: adds elastic, CLAHE, colour jitter, blur, noise (each on {HEAVY_SHARE:.0%} "
                           "of images)")
    loss.add_argument("--mixup", type=float, default=d.mixup, metavar="ALPHA",
                      help=f"blend image pairs and their labels, weight ~ Beta(ALPHA, ALPHA) (e.g. {MIXUP_ALPHA})")

    decisions = parser.add_argument_group("decisions")
    decisions.add_argument("--threshold", type=float, default=d.threshold,
                           help="multilabel / binary: one fixed probability cut instead of the calibrated ones")

    run = parser.add_argument_group("the run")
    run.add_argument("--output", metavar="DIR", default=d.output,
                     help="folder for the bundle, loss curve, history and metrics")
    run.add_argument("--resume", action="store_true",
                     help="continue the interrupted run in --output with its own settings")
    return parser


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """The training settings from the command line (without --resume), checked: a bad value is a DefectTFError."""
    arguments = vars(build_parser().parse_args(argv))
    arguments.pop("resume")
    arguments.pop("check")
    config = TrainConfig(**arguments)
    config.validate()
    return config


def check(data: str, labels: str | None, task_name: str | None, positive: str | None) -> int:
    """`--check`: report every problem with the labels and images; exit status 2 if training would stop."""
    task, source, task_problems = task_labels(read_source(data, labels), task_name, positive)
    table, label_problems = source.table, source.problems + task_problems
    print(f"task: {task.name}; labels from {labels or f'the class folders of {data}'} ({source.layout})")
    if table.attributes and table.images:
        print(task.summarize(table))
    report = check_data(data, table) if table.images else DataReport(warnings=list(table.notes))
    if report.describe_warnings():
        print(report.describe_warnings())
    if label_problems:
        print(f"{len(label_problems)} problem(s) in {labels or 'the class folders'}:")
        print("\n".join(f"  {problem}" for problem in label_problems))
    if report.bad_images:
        print(report.describe_bad_images())
    if label_problems or report.bad_images:
        return EXIT_USER_ERROR
    print(f"ok: {len(table.images)} images listed, all readable")
    return 0


def given_flags(argv: list[str] | None) -> list[str]:
    """The flags the command line sets itself, in the parser's order (not those left at their defaults)."""
    parser = build_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    given = vars(parser.parse_args(argv))
    return [action.option_strings[-1] for action in parser._actions if action.dest in given]


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def asks_for_anomaly(argv: list[str]) -> bool:
    """Whether the command line says --task anomaly (the localiser's own program takes it, help included)."""
    return any(arg == f"--task={ANOMALY_TASK}" or (arg == "--task" and following == ANOMALY_TASK)
               for arg, following in zip(argv, [*argv[1:], None]))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if asks_for_anomaly(argv):
        return train_anomaly.main(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.resume:
        ignored = [flag for flag in given_flags(argv) if flag not in ("--resume", "--output")]
        if ignored:
            parser.error(f"--resume continues the interrupted run with its own settings, so {', '.join(ignored)} "
                         "would be ignored; leave them out, or start a new run without --resume to change them")
    elif not args.data:
        parser.error("--data is required (or --resume to continue an interrupted run)")
    if args.check:
        ignored = [flag for flag in given_flags(argv) if flag not in CHECK_FLAGS]
        if ignored:
            print(f"note: --check reads only {', '.join(CHECK_FLAGS[1:])}; ignored: {', '.join(ignored)}")
        return check(args.data, args.labels, args.task, args.positive)
    config = None if args.resume else parse_args(argv)  # every flag checked before any work
    signal.signal(signal.SIGTERM, _interrupt)  # a polite kill ends like Ctrl-C, after the epoch's checkpoint
    progress = RunProgress()
    try:
        if args.resume:
            resume_training(args.output, progress=progress)
        else:
            train(config, progress=progress)
    except KeyboardInterrupt:
        print(progress.interrupted(args.output), file=sys.stderr)
        return EXIT_INTERRUPTED
    except WorkerLost as lost:  # every worker says what the chief saved, and restarts from it
        print(f"error: {lost}; {progress.interrupted(args.output)} (on every worker)", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
