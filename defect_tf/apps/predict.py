"""Detect defects in photos with a trained bundle: python inference.py photo.jpg [more.jpg ...]
A whole folder into a CSV, with a progress bar: python inference.py --data photos/ --output predictions.csv

Prints what a multi-label or binary model detects (with probabilities), or a multi-class model's class. A bundle
with an exported model (python export.py) is run by ONNX Runtime or LiteRT, without TensorFlow; the first line
says which runtime answered. A killed folder run continues where it stopped when run again.
Where is the defect: --localize DIR outlines it with the anomaly localiser (train.py --task anomaly), after the
classifier where --model holds both (only photos it calls damaged are outlined), and writes overlays into DIR.
"""

from __future__ import annotations

import json
import sys

from defect_tf.apps.cli import (
    EXIT_USER_ERROR,
    Parser,
    add_json_flag,
    add_model_flag,
    existing_folder,
    folder_to_write,
    json_errors,
    number_in,
    run,
)
from defect_tf.errors import DefectTFError
from defect_tf.runtime.folder import label_folder
from defect_tf.runtime.predictions import Prediction
from defect_tf.runtime.select import RUNTIMES, open_inferencer

PREDICTIONS_FILE = "predictions.csv"


def build_parser() -> Parser:
    parser = Parser(description=__doc__)
    parser.add_argument("images", nargs="*", help="image files, predicted a batch at a time")
    add_model_flag(parser)
    parser.add_argument("--data", metavar="DIR", type=existing_folder,
                        help="label every photo under DIR (sub-folders too) into the CSV --output")
    parser.add_argument("--output", metavar="FILE",
                        help=f"with --data: the CSV, a row per photo, unreadable ones with their reason (default: "
                             f"{PREDICTIONS_FILE})")
    parser.add_argument("--runtime", default="auto", choices=["auto", *RUNTIMES],
                        help="auto: the bundle's exported model if it has one (onnx, then litert), else keras; "
                             "--localize: the localiser's ONNX export if it has one, else keras")
    parser.add_argument("--threads", type=number_in(int, 1, 256),
                        help="threads the runtime computes with (default: one per core)")
    parser.add_argument("--explain", metavar="DIR", type=folder_to_write,
                        help="write a heatmap overlay PNG per detected attribute (or class) into DIR "
                             "(<image>_<attribute>.png; runs the Keras model)")
    parser.add_argument("--localize", metavar="DIR", type=folder_to_write,
                        help="outline defects with the anomaly localiser in --model (or its localizer/ folder) and "
                             "write <image>_outline.png overlays into DIR")
    add_json_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if bool(args.images) == bool(args.data):
        parser.error("give image files, or --data DIR for a whole folder (not both)")
    if args.data and (args.explain or args.json or args.localize):
        parser.error("--data writes its predictions to the CSV --output; --explain, --localize and --json are for "
                     "image files")
    if args.localize and args.explain:
        parser.error("--localize and --explain each draw over the photo; choose one")
    if args.output and not args.data:
        parser.error("--output names the CSV of a folder run (--data DIR); image files are printed")
    args.output = args.output or PREDICTIONS_FILE
    with json_errors(args.json):
        if args.localize:
            return localize(args)
        return label_folder_to_csv(args) if args.data else predict(args)


def label_folder_to_csv(args) -> int:
    from defect_tf.progress_bar import progress_bar

    inferencer = open_inferencer(args.model, args.runtime, args.threads)
    print(f"runtime: {inferencer.describe()}", flush=True)
    bars = []

    def progress(total: int, done: int):
        bars.append(progress_bar(total=total, initial=done, unit="photo", desc="labelling", dynamic_ncols=True))
        return bars[-1].update

    try:
        counts = label_folder(inferencer, args.data, args.output, progress)
    finally:
        for bar in bars:
            bar.close()
    print(f"{counts['images']} photos: {counts['predicted']} labelled now, {counts['skipped']} already in "
          f"{args.output}, {counts['unreadable']} unreadable (listed with their reason); predictions in {args.output}")
    return 0


def predict(args) -> int:
    if args.explain and args.runtime not in ("auto", "keras"):
        raise DefectTFError(f"--explain computes heatmaps from the Keras model's gradients; leave out --runtime "
                            f"{args.runtime}")
    inferencer = open_inferencer(args.model, "keras" if args.explain else args.runtime, args.threads)
    predictions, errors = inferencer.predict(args.images)
    overlays = _heatmaps(inferencer, predictions, args.explain) if args.explain else {}
    metadata = inferencer.metadata
    if args.json:
        records = [p.as_dict() for p in predictions]
        if args.explain:
            for record in records:
                record["overlays"] = [str(path) for path in overlays[record["image"]]]
        print(json.dumps({"model": str(inferencer.location), "runtime": inferencer.runtime,
                          "model_file": str(inferencer.model_file), "task": metadata.task,
                          "thresholds": metadata.thresholds_by_attribute(),
                          "untrained": metadata.untrained, "predictions": records,
                          "errors": [str(e) for e in errors]}, indent=1))
    else:
        print(f"runtime: {inferencer.describe()}")
        if metadata.untrained and predictions:
            print(f"note: never detected, the model was not trained on them (no known labels): "
                  f"{', '.join(metadata.untrained)}")
        for prediction in predictions:
            print(prediction.image)
            if not prediction.detected:
                print("  no defect detected")
            for name in prediction.detected:
                kind = "class " if metadata.task == "multiclass" else ""
                print(f"  {kind}{name}: {prediction.probabilities[name]:.3f}")
            for path in overlays.get(prediction.image, []):
                print(f"  heatmap: {path}")
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return EXIT_USER_ERROR if errors else 0


def localize(args) -> int:
    """Stage 1 (the classifier, if --model holds one), then the localiser's outline on the photos called damaged."""
    from defect_tf.anomaly.pipeline import TwoStage, write_overlays
    from defect_tf.anomaly.store import load_localizer
    from defect_tf.bundle.layout import holds_classifier

    localizer = load_localizer(args.model, args.runtime, args.threads)
    classifier = open_inferencer(args.model, args.runtime, args.threads) if holds_classifier(args.model) else None
    answers, errors = TwoStage(classifier, localizer).answer(args.images)
    overlays = write_overlays(answers, args.localize)
    if args.json:
        records = [{**answer.to_json(), "overlay": str(overlays[answer.image]) if answer.image in overlays else None}
                   for answer in answers]
        print(json.dumps({"classifier": classifier.describe() if classifier else None,
                          "localizer": localizer.describe(), "predictions": records,
                          "errors": [str(e) for e in errors]}, indent=1))
    else:
        if classifier is not None:
            print(f"stage 1: {classifier.describe()}")
        print(f"stage 2: {localizer.describe()}")
        for answer in answers:
            print(answer.image)
            if answer.prediction is not None:
                for name in answer.prediction.detected:
                    print(f"  {name}: {answer.prediction.probabilities[name]:.3f}")
                if answer.localization is None:
                    print("  no defect detected (stage 1): not outlined")
                    continue
            found = answer.localization
            if not found.mask.any():
                print(f"  no defect outlined (anomaly score {found.score:.3g}, threshold "
                      f"{localizer.metadata.image_threshold:.3g})")
            else:
                print(f"  defect outlined: {int(found.mask.sum())} px ({100 * found.mask.mean():.2f}% of the photo) in "
                      f"{len(found.regions)} region(s), anomaly score {found.score:.3g}")
                for region in found.regions[:5]:
                    print(f"    box {region.box_text()}: {region.area} px")
            if answer.image in overlays:
                print(f"  overlay: {overlays[answer.image]}")
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return EXIT_USER_ERROR if errors else 0


def _heatmaps(inferencer, predictions: list[Prediction], folder: str) -> dict:
    """Heatmap overlays of the detected attributes, from the Keras model's gradients (the Keras runtime's model)."""
    from defect_tf.inference.predictor import Predictor

    return Predictor(inferencer.bundle).write_explanations(predictions, folder)


if __name__ == "__main__":
    sys.exit(run(main))
