"""Missing labels, four ways, scored against the full truth on one shared split.

    python benchmarks/missing_labels.py --dataset neu [--data-root ../shared/data] [--image-size 64]

Arms: `full` (labels.txt); `masked` (labels_na.txt, NA masked: the product's way); `na_as_0`
(labels_na.txt with every NA written as 0: the common mistake); `drop_rows` (only the rows of
labels_na.txt without any NA). A control arm on request, `full_budget` (random complete rows of
labels.txt holding as many known labels as labels_na.txt), tells whether masked trails full because
of the masking or only because it has fewer labels. Every arm uses the same split file, image size,
epochs and seed, and every arm is scored on the same test images (all of the split's, also those
`drop_rows` left out of its label file) against labels.txt.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

import common  # before defect_tf: it quiets TensorFlow's start-up

from defect_tf.data.labels import LabelTable, format_labels, parse_labels

ARMS = ("full", "masked", "na_as_0", "drop_rows")
CONTROL_ARMS = ("full_budget",)  # not asked for by default: explains a gap between masked and full


def arm_labels(arm: str, folder: Path, work: Path, seed: int = 0) -> Path:
    """The label file one arm trains on."""
    if arm == "full":
        return folder / "labels.txt"
    if arm == "masked":
        return folder / "labels_na.txt"
    table = parse_labels(folder / "labels_na.txt")
    if arm == "na_as_0":
        changed = LabelTable(table.attributes, table.images, np.where(table.values < 0, 0.0, table.values))
    elif arm == "drop_rows":
        changed = table.subset(np.flatnonzero((table.values >= 0).all(axis=1)))
    else:  # full_budget: complete rows of labels.txt, as many known labels in all as labels_na.txt has
        full = parse_labels(folder / "labels.txt")
        keep = round((table.values >= 0).mean() * len(full.images))
        changed = full.subset(np.sort(np.random.default_rng(seed).choice(len(full.images), keep, replace=False)))
    path = work / f"labels_{arm}.txt"
    path.write_text(format_labels(changed), encoding="utf-8")
    return path


def results_table(results: dict) -> list[str]:
    """The comparison's table: what each arm trained on, its scores against the full truth."""
    described = {"full": "labels.txt", "masked": "labels_na.txt, NA masked", "na_as_0": "labels_na.txt, NA → 0",
                 "drop_rows": "labels_na.txt rows without NA",
                 "full_budget": "labels.txt, random rows with as many labels as labels_na.txt"}

    def top1(r: dict) -> str:  # only where most test images carry one label (NEU), not on DeepPCB
        single_label = (r["test_images"] or 0) <= 2 * (r["single_label_images"] or 0)
        return common.number(r["top1_accuracy"]) if single_label else "-"

    return common.comparison_table(results, {"trained on": described.get}, {"top-1 accuracy": top1})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, choices=["neu", "multilabel"])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS + CONTROL_ARMS)
    common.add_comparison_options(parser)
    args = parser.parse_args(argv)
    folder = common.data_folder(args.data_root, args.dataset)
    work, base = common.start_comparison(args, folder, folder / "labels.txt", f"missing_labels_{args.dataset}")
    arms = {arm: replace(base, labels=str(arm_labels(arm, folder, work, args.seed)), output=str(work / arm))
            for arm in args.arms}
    results = common.train_arms(arms, folder / "labels.txt", work,
                                lambda arm: f"training on {Path(arms[arm].labels).name}")

    common.publish_comparison(f"missing_labels_{args.dataset}", f"Missing labels: {args.dataset}", args,
                              "{settings}; every arm scored on the same {test_images} test images "
                              "against the full labels.txt.", results_table(results), results)
    return 0


if __name__ == "__main__":
    sys.exit(common.run(main))
