"""The demo, end to end and offline (`make demo`): generate the synthetic photos into this folder (images/, masks/,
labels.txt), fine-tune pretrained EfficientNet-Lite0 on them, evaluate the model, and label one photo. Each step
first prints the command that does it by hand. A folder holding an images/, masks/ or labels.txt of yours is
refused, not overwritten."""

from __future__ import annotations

import sys

from defect_tf.apps import evaluate, predict, train
from defect_tf.apps.cli import Parser, run
from defect_tf.data import demo as demo_data

# Everything not given here is train.py's default (two phases, early stopping, calibrated thresholds).
TRAIN_FLAGS = ["--backbone", "efficientnet_lite0", "--image-size", "128"]
SAMPLE_PHOTO = "images/surface_0003.png"
STEPS = [
    ("python -m defect_tf.data.demo", demo_data.main, []),
    ("python train.py", train.main, ["--data", "images", "--labels", "labels.txt", *TRAIN_FLAGS]),
    ("python evaluate.py", evaluate.main, []),
    ("python inference.py", predict.main, [SAMPLE_PHOTO]),
]


def build_parser() -> Parser:
    return Parser(description=__doc__)


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    for command, program, arguments in STEPS:
        print(f"\n$ {command} {' '.join(arguments)}".rstrip(), flush=True)
        status = program(arguments) or 0
        if status:
            return status
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
