"""Score a trained bundle per attribute: python evaluate.py [--model outputs/] [--data DIR --labels FILE]

By default the bundle's own test split is scored against the label file it was trained with.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from defect_tf.cli import run
from defect_tf.bundle import load_bundle
from defect_tf.evaluation import evaluate_bundle, format_report, split_table
from defect_tf.labels import parse_labels
from defect_tf.splits import SPLITS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="outputs", help="bundle folder, or the output folder train.py wrote")
    parser.add_argument("--data", help="image folder (default: the one the model was trained on)")
    parser.add_argument("--labels", help="label file (default: the one the model was trained with)")
    parser.add_argument("--split", choices=[*SPLITS, "all"],
                        help="which images of the label file to score: one of the model's saved splits, or all "
                             "(default: test, or all when --data is given)")
    parser.add_argument("--output", help="where metrics.json and pr_curve.png go (default: the model's output folder)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout and nothing else")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bundle = load_bundle(args.model)
    data_dir = args.data or bundle.metadata["data_dir"]
    table = parse_labels(args.labels or bundle.metadata["labels_file"])
    split = args.split or ("all" if args.data else "test")
    table = split_table(bundle, table, split)
    output = Path(args.output) if args.output else bundle.path.parent
    report = evaluate_bundle(bundle, data_dir, table, output, args.batch_size)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"{split} images of {args.labels or bundle.metadata['labels_file']}, model {bundle.path}")
        print(format_report(report))
        print(f"metrics saved to {output / 'metrics.json'}, precision-recall curves to {output / 'pr_curve.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
