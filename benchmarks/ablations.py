"""Loss and calibration ablations: focal vs plain masked BCE, class weights on vs off, calibrated
thresholds vs 0.5, on one shared split.

    python benchmarks/ablations.py --dataset multilabel [--data-root ../shared/data] [--image-size 128]
    python benchmarks/ablations.py --dataset neu_xml

Data sets: `multilabel` (DeepPCB, labels.txt, the authors' split) and `neu_xml` (NEU's real
multi-label file, labels_xml_multilabel.txt). Arms: every combination of the loss (focal with
gamma 2, or gamma 0 = masked binary cross-entropy) and class weights (on / off); every arm shares
split, image size, epochs and seed, and each model is scored with both calibrated thresholds and 0.5.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

import common  # before defect_tf: it quiets TensorFlow's start-up

DATASETS = {"multilabel": ("multilabel", "labels.txt"), "neu_xml": ("neu", "labels_xml_multilabel.txt")}
ARMS = {  # name: (gamma, class weights)
    "focal_weighted": (2.0, True),
    "focal": (2.0, False),
    "bce_weighted": (0.0, True),
    "bce": (0.0, False),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, choices=list(DATASETS))
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    common.add_comparison_options(parser)
    args = parser.parse_args(argv)
    folder_name, labels_name = DATASETS[args.dataset]
    folder = common.data_folder(args.data_root, folder_name)
    labels = folder / labels_name
    work, base = common.start_comparison(args, folder, labels, f"ablations_{args.dataset}")
    base = replace(base, labels=str(labels))
    arms = {arm: replace(base, gamma=ARMS[arm][0], class_weights=ARMS[arm][1], output=str(work / arm))
            for arm in args.arms}
    results = common.train_arms(arms, labels, work, lambda arm: f"gamma {ARMS[arm][0]}, class weights "
                                                                f"{'on' if ARMS[arm][1] else 'off'}")

    rows = common.comparison_table(results,
                                   {"loss": lambda arm: "focal, gamma 2" if ARMS[arm][0] else "masked BCE",
                                    "class weights": lambda arm: "on" if ARMS[arm][1] else "off"},
                                   {"exact match": lambda r: common.number(r["exact_match"])})
    common.publish_comparison(f"ablations_{args.dataset}", f"Loss and calibration ablations: {args.dataset}", args,
                              f"{folder_name}/{labels_name}; {{settings}}; test split: {{test_images}} images.",
                              rows, results)
    return 0


if __name__ == "__main__":
    sys.exit(common.run(main))
