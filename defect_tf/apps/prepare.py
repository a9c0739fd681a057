"""Write a large training set once as shards: python prepare.py --data images/ --labels labels.txt --output shards/

The images are checked, split as train.py would split them with the same flags, resized to --image-size and
stored as TFRecord shards of about 128 MB with a manifest; then python train.py --data shards/ trains on them
with no image decoding. A killed run, started again with the same command, keeps every finished shard.
"""

from __future__ import annotations

import argparse
import sys

from defect_tf.apps.cli import EXIT_INTERRUPTED, Parser, run
from defect_tf.apps.train import DEFAULTS, add_source_flags
from defect_tf.tasks import TASKS
from defect_tf.train.config import TrainConfig
from defect_tf.train.shard_preparation import DEFAULT_SHARD_FOLDER, prepare_shards


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(description=__doc__)
    data = parser.add_argument_group("data")
    add_source_flags(data, DEFAULTS, list(TASKS))
    data.add_argument("--seed", type=int, default=DEFAULTS.seed, help="fixes the split (as train.py's --seed)")
    data.add_argument("--output", metavar="DIR", default=DEFAULT_SHARD_FOLDER,
                      help="folder for the shards, their manifest and label table")
    return parser


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """The settings as a training run's (the same defaults and checks), from the command line."""
    parser = build_parser()
    arguments = vars(parser.parse_args(argv))
    if not arguments["data"]:
        parser.error("--data is required")
    config = TrainConfig(**arguments)
    config.validate()
    return config


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        prepare_shards(config)
    except KeyboardInterrupt:
        print(f"interrupted: the finished shards in {config.output} are kept; run the same command again to write "
              "the rest", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
