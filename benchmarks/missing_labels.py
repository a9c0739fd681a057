"""Missing labels, handled several ways, scored against the full truth on one shared split.

    python benchmarks/missing_labels.py --dataset neu [--data-root ../shared/data] [--image-size 64] [--na 0.7]

Arms: `full` (labels.txt); `masked` (labels_na.txt, NA masked: the product's way); `na_as_0`
(labels_na.txt with every NA written as 0: the common mistake); `drop_rows` (only the rows of
labels_na.txt without any NA). A control arm on request, `full_budget` (random complete rows of
labels.txt holding as many known labels as labels_na.txt), tells whether masked trails full because
of the masking or only because it has fewer labels. `pseudo` (on request) fills NA cells in: the masked
arm's model predicts its training images, an NA cell where it is confident becomes that label (the
confidence cut per attribute from the validation images' known labels, see `confident_limits`), and a
new model trains from scratch on the filled file; `pseudo2` fills the same cells again with the pseudo
arm's model (a second round). Every arm uses the same split file, image size,
epochs and seed, and every arm is scored on the same test images (all of the split's, also those
`drop_rows` left out of its label file) against labels.txt.

`--na F` hides a fraction F of labels.txt's cells by the data sets' own rule for labels_na.txt
(`numpy.random.RandomState(0).rand(rows, columns) < F`; 0.3 gives labels_na.txt itself, and a larger F
hides every cell a smaller one hides, and more).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

import common  # before defect_tf: it quiets TensorFlow's start-up

from defect_tf.bundle.store import load_bundle
from defect_tf.data.labels import NA, LabelTable, format_labels, known_mask, parse_labels
from defect_tf.data.pipeline import make_dataset
from defect_tf.data.splits import read_split
from defect_tf.inference.predictor import predict_probabilities
from defect_tf.train.label_filling import FILL_PRECISION, confident_limits, fill_rows, missing_cells

ARMS = ("full", "masked", "na_as_0", "drop_rows")
CONTROL_ARMS = ("full_budget",)  # not asked for by default: explains a gap between masked and full
FILLING_ARMS = {"pseudo": "masked", "pseudo2": "pseudo"}  # arm -> the arm whose model fills its labels in


def na_labels(folder: Path, work: Path, fraction: float) -> Path:
    """labels.txt with a `fraction` of its cells hidden (NA) by the rule that made the data set's labels_na.txt."""
    full = parse_labels(folder / "labels.txt")
    hidden = np.random.RandomState(0).rand(*full.values.shape) < fraction
    path = work / f"labels_na{round(100 * fraction)}.txt"
    path.write_text(format_labels(LabelTable(full.attributes, full.images, np.where(hidden, NA, full.values))),
                    encoding="utf-8")
    return path


def pseudo_labels(model_output: Path, na_file: Path, data_dir: str, split_file: str, path: Path) -> tuple[Path, dict]:
    """A filling arm's label file `path`: `na_file` with the training images' NA cells filled in where the model in
    `model_output` is confident, as `train.py --fill-na` fills them (train/label_filling.py). Returns the file and
    what was filled (counts and the cuts)."""
    bundle = load_bundle(model_output)
    table = parse_labels(na_file)
    parts = read_split(split_file)
    rows = {part: [i for i, image in enumerate(table.images) if parts.get(image) == part] for part in ("train", "val")}
    probabilities = {}
    for part, indices in rows.items():
        paths = [str(Path(data_dir) / table.images[i]) for i in indices]
        dataset = make_dataset(paths, np.zeros((len(paths), len(table.attributes)), np.float32), bundle.image_size, 64)
        probabilities[part] = predict_probabilities(bundle.model, dataset, bundle.task)
    low, high = confident_limits(probabilities["val"], table.values[rows["val"]], FILL_PRECISION)
    values = table.values.copy()
    values[rows["train"]], counts = fill_rows(values[rows["train"]], missing_cells(table, None)[rows["train"]],
                                              probabilities["train"], low, high)
    path.write_text(format_labels(LabelTable(table.attributes, table.images, values)), encoding="utf-8")
    return path, counts | {"low": low.tolist(), "high": high.tolist()}


def arm_labels(arm: str, folder: Path, work: Path, seed: int = 0, na_file: Path | None = None) -> Path:
    """The label file one arm trains on (`na_file`: the masked labels, labels_na.txt unless given)."""
    na_file = na_file or folder / "labels_na.txt"
    if arm == "full":
        return folder / "labels.txt"
    if arm == "masked":
        return na_file
    table = parse_labels(na_file)
    if arm == "na_as_0":
        changed = LabelTable(table.attributes, table.images, np.where(known_mask(table.values), table.values, 0.0))
    elif arm == "drop_rows":
        changed = table.subset(np.flatnonzero(known_mask(table.values).all(axis=1)))
    else:  # full_budget: complete rows of labels.txt, as many known labels in all as labels_na.txt has
        full = parse_labels(folder / "labels.txt")
        keep = round(known_mask(table.values).mean() * len(full.images))
        changed = full.subset(np.sort(np.random.default_rng(seed).choice(len(full.images), keep, replace=False)))
    path = work / f"labels_{arm}.txt"
    path.write_text(format_labels(changed), encoding="utf-8")
    return path


def results_table(results: dict, na_name: str = "labels_na.txt") -> list[str]:
    """The comparison's table: what each arm trained on, its scores against the full truth."""
    described = {"full": "labels.txt", "masked": f"{na_name}, NA masked", "na_as_0": f"{na_name}, NA → 0",
                 "drop_rows": f"{na_name} rows without NA",
                 "full_budget": f"labels.txt, random rows with as many labels as {na_name}",
                 "pseudo": f"{na_name}, confident NA cells of training images filled in by the masked model",
                 "pseudo2": f"{na_name}, the same cells filled in again by the pseudo arm's model"}

    def top1(r: dict) -> str:  # only where most test images carry one label (NEU), not on DeepPCB
        single_label = (r["test_images"] or 0) <= 2 * (r["single_label_images"] or 0)
        return common.number(r["top1_accuracy"]) if single_label else "-"

    return common.comparison_table(results, {"trained on": described.get}, {"top-1 accuracy": top1})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, choices=["neu", "multilabel"])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS + CONTROL_ARMS + tuple(FILLING_ARMS))
    parser.add_argument("--na", type=float, help="hide this fraction of labels.txt's cells instead of using "
                        "labels_na.txt (0.3 gives labels_na.txt)")
    common.add_comparison_options(parser)
    args = parser.parse_args(argv)
    for arm, source in FILLING_ARMS.items():
        if arm in args.arms and source not in args.arms:
            parser.error(f"the {arm} arm starts from the {source} arm's model: list {source} too")
    folder = common.data_folder(args.data_root, args.dataset)
    work, base = common.start_comparison(args, folder, folder / "labels.txt", f"missing_labels_{args.dataset}")
    na_file = na_labels(folder, work, args.na) if args.na is not None else folder / "labels_na.txt"
    trained_first = [arm for arm in args.arms if arm not in FILLING_ARMS]
    arms = {arm: replace(base, labels=str(arm_labels(arm, folder, work, args.seed, na_file)), output=str(work / arm))
            for arm in trained_first}
    describe = lambda arm: f"training on {Path(arms[arm].labels).name}"  # noqa: E731
    results = common.train_arms(arms, folder / "labels.txt", work, describe)
    for arm in (arm for arm in FILLING_ARMS if arm in args.arms):
        source = FILLING_ARMS[arm]
        labels, filled = pseudo_labels(work / source, na_file, base.data, base.split_file, work / f"labels_{arm}.txt")
        print(f"{arm}: {filled['filled_1']} ones and {filled['filled_0']} zeros filled into "
              f"{filled['na_cells']} NA cells of the training images by the {source} arm's model", flush=True)
        arms[arm] = replace(base, labels=str(labels), output=str(work / arm))
        results |= common.train_arms({arm: arms[arm]}, folder / "labels.txt", work, describe)
        truth = parse_labels(folder / "labels.txt").values
        filled_values = parse_labels(labels).values
        newly = ~known_mask(parse_labels(na_file).values) & known_mask(filled_values)
        results[arm] |= {"filled": filled, "filled_right": float((filled_values[newly] == truth[newly]).mean())
                         if newly.any() else None,
                         "train_seconds_in_all": results[arm]["train_seconds"]
                         + results[source].get("train_seconds_in_all", results[source]["train_seconds"])}

    na_name = na_file.name if args.na is None else f"labels.txt with {round(100 * args.na)}% NA"
    title = f"Missing labels: {args.dataset}" + ("" if args.na is None else f", {round(100 * args.na)}% NA")
    intro = ("{settings}; every arm scored on the same {test_images} test images against the full labels.txt."
             + "".join(pseudo_note(arm, results[arm]) for arm in FILLING_ARMS if arm in results))
    common.publish_comparison(f"missing_labels_{args.dataset}" + ("" if args.na is None else
                                                                 f"_na{round(100 * args.na)}"),
                              title, args, intro, results_table(results, na_name), results)
    return 0


def pseudo_note(arm: str, result: dict) -> str:
    """What a filling arm filled in, how much of it was right, and what it cost."""
    filled = result["filled"]
    return (f" The {arm} arm: {filled['filled_1']:,} ones and {filled['filled_0']:,} zeros filled into the "
            f"{filled['na_cells']:,} NA cells of the training images (the cut: right {FILL_PRECISION:.0%} of the "
            f"time on the validation images' known labels), {common.number(result['filled_right'])} of them right "
            f"against labels.txt; its train time is its own run's, {result['train_seconds_in_all']:.0f} s with the "
            "runs it starts from.")


if __name__ == "__main__":
    sys.exit(common.run(main))
