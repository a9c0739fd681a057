"""Score a trained bundle: python evaluate.py [--model outputs/] [--data DIR [--labels FILE]]

By default the bundle's own test split is scored against the labels it was trained with (its label file,
or its class folders). Multi-label and binary models get per-attribute tables, multi-class models accuracy
and a confusion matrix. An anomaly localiser (--model outputs/localizer) gets image AUROC, AP and F1 and, with
defect masks, pixel AUROC and AP, PRO, IoU, Dice and coverage, per defect type with --types. --two-stage scores
the classifier and the localiser beside it as one pipeline.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from defect_tf.anomaly.store import has_localizer
from defect_tf.apps.cli import (
    Parser,
    add_json_flag,
    add_model_flag,
    existing_file,
    existing_folder,
    folder_to_write,
    json_errors,
    number_in,
    run,
)
from defect_tf.bundle.layout import holds_classifier
from defect_tf.bundle.store import load_bundle
from defect_tf.data.shards import is_shard_folder, open_shards
from defect_tf.data.sources import load_source
from defect_tf.data.splits import SPLITS
from defect_tf.errors import DefectTFError, LabelError
from defect_tf.evaluate.evaluation import METRICS_FILE, evaluate_bundle, split_table
from defect_tf.inference.predictor import PREDICT_BATCH
from defect_tf.io import output_folder
from defect_tf.io.files import write_text
from defect_tf.runtime.select import RUNTIMES, open_inferencer, runtime_of_file
from defect_tf.tasks import task_labels


def build_parser() -> Parser:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_flag(parser)
    parser.add_argument("--data", metavar="DIR", type=existing_folder, help="image folder (default: the one the model was trained on)")
    parser.add_argument("--labels", metavar="FILE", type=existing_file,
                        help="label file (default: the one the model was trained with; without one, the class "
                             "folders of --data)")
    parser.add_argument("--split", choices=[*SPLITS, "all"],
                        help="which images of the label file to score: one of the model's saved splits, or all "
                             "(default: test, or all when --data is given)")
    parser.add_argument("--output", metavar="DIR", type=folder_to_write,
                        help="where metrics.json and the plots go (default: the model's output folder)")
    parser.add_argument("--runtime", choices=["auto", *RUNTIMES],
                        help="what runs the model (default: keras; a model file given as --model, its own runtime); "
                             "auto: the bundle's exported model if it has one")
    parser.add_argument("--batch-size", type=number_in(int, 1, 1024), default=PREDICT_BATCH)
    parser.add_argument("--masks", metavar="DIR", type=existing_folder,
                        help="a localiser: defect masks, IMAGE_STEM.png (default: the ones it was trained with)")
    parser.add_argument("--types", metavar="FILE", type=existing_file,
                        help="a localiser: `image type` rows, for figures per defect type (default: its own)")
    parser.add_argument("--two-stage", action="store_true",
                        help="after the classifier, score its localiser (--model's localizer/ folder) on the "
                             "localiser's test photos, alone and as the second stage (writes two_stage.json)")
    add_json_flag(parser)
    return parser


def for_this_model(problem: str, task: str) -> str:
    """A label problem as it reads for a trained model, whose task is fixed: no advice to pick another --task."""
    problem = re.sub(r"(;|,)? (or )?use --task [a-z]+( or [a-z]+)?", "", problem)
    return problem.replace(f"--task {task}", f"this {task} model", 1)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with json_errors(args.json):
        return evaluate(args)


def evaluate(args) -> int:
    if not holds_classifier(args.model) and has_localizer(args.model):
        return evaluate_localizer(args)
    if (args.masks or args.types) and not args.two_stage:
        raise DefectTFError("--masks and --types are for an anomaly localiser (--model outputs/localizer, or "
                            "--two-stage)")
    if args.two_stage and not has_localizer(args.model):
        raise DefectTFError(f"--two-stage needs a localiser beside the classifier ({Path(args.model) / 'localizer'}):"
                            " train one with python train.py --task anomaly")
    bundle = load_bundle(args.model)
    data_dir = args.data or bundle.metadata.data_dir
    labels_file = args.labels or bundle.metadata.labels_file or None
    if not Path(data_dir).is_dir():
        raise DefectTFError(f"the model's data folder {data_dir} no longer exists; pass the images with --data DIR")
    if labels_file and not args.labels and not Path(labels_file).is_file():
        raise DefectTFError(f"the model's label file {labels_file} no longer exists; pass one with --labels FILE")
    task_name = bundle.task.name
    shards = open_shards(data_dir) if is_shard_folder(data_dir) else None
    if shards and args.labels:
        raise DefectTFError(f"--labels: the shards in {data_dir} hold their labels; leave it out")
    source = shards.label_source() if shards else load_source(data_dir, labels_file)
    # from two classes (folders, a class CSV), a binary model's defect class is its one attribute
    positive = bundle.attributes[0] if task_name == "binary" and source.one_class_per_image else None
    task, source, problems = task_labels(source, task_name, positive)
    if problems:
        raise LabelError("\n".join(for_this_model(problem, task_name) for problem in problems))
    table = source.table
    split = args.split or ("all" if args.data else "test")
    table = split_table(bundle, table, split)
    if args.output:
        output_folder.check_no_overlap(args.output, data_dir)
    output = Path(args.output) if args.output else bundle.path.parent
    _, runtime = runtime_of_file(args.model, args.runtime or "auto")
    runtime = "keras" if runtime == "auto" and not args.runtime else runtime
    if shards and runtime != "keras":
        raise DefectTFError(f"--runtime {runtime} reads image files, and {data_dir} holds prepared shards; score them "
                            "with --runtime keras, or pass the image folder with --data DIR --labels FILE")
    inferencer = None if runtime == "keras" else open_inferencer(args.model, runtime)
    report = evaluate_bundle(bundle, data_dir, table, output, args.batch_size, inferencer, shards)
    if args.two_stage:
        report = {"classifier": report, **evaluate_two_stages(args, bundle, runtime, output)}
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        ran = inferencer.describe() if inferencer else f"Keras ({bundle.path / 'model.keras'})"
        where = f"the shards in {data_dir}" if shards else labels_file or f"the class folders of {data_dir}"
        print(f"{split} images of {where}, {task.name} model run by {ran}")
        print(task.format_report(report.get("classifier", report)))
        plots = ", ".join(str(output / name) for name in task.report_files)
        print(f"metrics saved to {output / METRICS_FILE}, plots to {plots}")
        if args.two_stage:
            from defect_tf.anomaly.evaluation import describe

            print(f"the localiser alone and the two stages, on {report['two_stage']['photos']} test photos of the "
                  f"localiser ({report['left_out']} left out: the classifier trained or calibrated on them):")
            print("localiser alone:\n" + describe(report["localizer"]))
            print("two stages (classifier decides, localiser outlines):\n" + describe(report["two_stage"]))
            print(f"saved to {output / TWO_STAGE_FILE}")
    return 0


TWO_STAGE_FILE = "two_stage.json"


def evaluate_two_stages(args, bundle, runtime: str, output: Path) -> dict:
    """The localiser beside the classifier on its own test photos the classifier never saw (neither trained nor
    calibrated on), alone and as stage 2; written to two_stage.json."""
    from defect_tf.anomaly.evaluation import score_localizer, score_two_stages
    from defect_tf.anomaly.pipeline import TwoStage
    from defect_tf.anomaly.store import load_localizer

    localizer = load_localizer(args.model)
    anomaly_set = _localizer_photos(localizer.metadata, None, None, args.masks, args.types)
    seen = set(bundle.metadata.split.get("train", [])) | set(bundle.metadata.split.get("val", []))
    seen = {(Path(bundle.metadata.data_dir) / image).resolve() for image in seen}
    tested = set(localizer.metadata.split.get("test", []))
    rows = [row for row, image in enumerate(anomaly_set.images) if image in tested]
    unseen = [row for row in rows if anomaly_set.path(row).resolve() not in seen]
    if not unseen:
        raise DefectTFError("--two-stage: the classifier trained or calibrated on every test photo of the localiser, "
                            "so nothing is left to score the two stages on honestly")
    classifier = open_inferencer(args.model, runtime)
    report = {"localizer": score_localizer(localizer, anomaly_set, unseen),
              "two_stage": score_two_stages(TwoStage(classifier, localizer), anomaly_set, unseen),
              "left_out": len(rows) - len(unseen)}
    with output_folder.locked(output):
        write_text(output_folder.claim(output, [TWO_STAGE_FILE]) / TWO_STAGE_FILE, json.dumps(report, indent=1))
    return report


def _localizer_photos(saved, data: str | None, labels: str | None, masks: str | None, types: str | None):
    """The localiser's photos (its own data, labels, masks and types unless given), each checked to still exist."""
    from defect_tf.anomaly.data import read_anomaly_set

    data_dir = data or saved.data_dir
    if not Path(data_dir).is_dir():
        raise DefectTFError(f"the localiser's data folder {data_dir} no longer exists; pass the photos with --data DIR")
    given = {"labels": labels or (None if data else saved.labels_file or None),
             "masks": masks or saved.masks_dir or None, "types": types or saved.types_file or None}
    for what, path in given.items():
        if path and not Path(path).exists():
            raise DefectTFError(f"the localiser's {what} {path} no longer exist; pass them with --{what}")
    return read_anomaly_set(data_dir, given["labels"], masks=given["masks"], types=given["types"],
                            require_train=False)


def evaluate_localizer(args) -> int:
    """A localiser on its own test split (or every photo of --data), with the masks and types it knows."""
    from defect_tf.anomaly.evaluation import OUTLINES_FILE, SCORES_FILE, describe, score_localizer
    from defect_tf.anomaly.store import load_localizer

    localizer = load_localizer(args.model)
    saved = localizer.metadata
    anomaly_set = _localizer_photos(saved, args.data, args.labels, args.masks, args.types)
    data_dir, labels = anomaly_set.data_dir, args.labels or (None if args.data else saved.labels_file or None)
    split = args.split or ("all" if args.data else "test")
    wanted = set(anomaly_set.images) if split == "all" else set(saved.split.get(split, []))
    rows = [row for row, image in enumerate(anomaly_set.images) if image in wanted]
    if not rows:
        raise DefectTFError(f"no {split} photos to score in {data_dir}")
    output = Path(args.output) if args.output else localizer.path.parent
    if args.output:
        output_folder.check_no_overlap(args.output, data_dir)
    with output_folder.locked(output):
        claimed = output_folder.claim(output, [METRICS_FILE, OUTLINES_FILE, SCORES_FILE])
        report = score_localizer(localizer, anomaly_set, rows, gallery=claimed / OUTLINES_FILE,
                                 score_plot=claimed / SCORES_FILE)
        write_text(claimed / METRICS_FILE, json.dumps(report, indent=1))
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"{split} photos of {labels or data_dir}, {localizer.describe()}")
        print(describe(report))
        drawn = "".join(f", {what} to {output / name}" for name, what in (
            (OUTLINES_FILE, "outlines against the true defects"), (SCORES_FILE, "image scores against the threshold"))
            if (output / name).is_file())
        print(f"metrics saved to {output / METRICS_FILE}{drawn}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
