"""Detect defects in photos with a trained bundle: python inference.py photo.jpg [more.jpg ...]

Prints what a multi-label or binary model detects (with probabilities), or a multi-class model's class.
"""

from __future__ import annotations

import json
import sys

from defect_tf.apps.cli import (
    EXIT_USER_ERROR,
    Parser,
    add_json_flag,
    add_model_flag,
    folder_to_write,
    json_errors,
    run,
)
from defect_tf.bundle.store import load_bundle
from defect_tf.inference.predictor import Predictor


def build_parser() -> Parser:
    parser = Parser(description=__doc__)
    parser.add_argument("images", nargs="+", help="image files, predicted together as one batch")
    add_model_flag(parser)
    parser.add_argument("--explain", metavar="DIR", type=folder_to_write,
                        help="write a heatmap overlay PNG per detected attribute (or class) into DIR "
                             "(<image>_<attribute>.png)")
    add_json_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with json_errors(args.json):
        return predict(args)


def predict(args) -> int:
    bundle = load_bundle(args.model)
    predictor = Predictor(bundle)
    predictions, errors = predictor.predict(args.images)
    overlays = predictor.write_explanations(predictions, args.explain) if args.explain else {}
    if args.json:
        records = [p.as_dict() for p in predictions]
        if args.explain:
            for record in records:
                record["overlays"] = [str(path) for path in overlays[record["image"]]]
        thresholds = {name: (float(t) if name not in bundle.untrained and bundle.task.uses_thresholds else None)
                      for name, t in zip(bundle.attributes, bundle.thresholds)}
        print(json.dumps({"model": str(bundle.path), "task": bundle.task.name, "thresholds": thresholds,
                          "untrained": bundle.untrained,
                          "predictions": records, "errors": [str(e) for e in errors]}, indent=1))
    else:
        if bundle.untrained and predictions:
            print(f"note: never detected, the model was not trained on them (no known labels): "
                  f"{', '.join(bundle.untrained)}")
        for prediction in predictions:
            print(prediction.image)
            if not prediction.detected:
                print("  no defect detected")
            for name in prediction.detected:
                kind = "class " if bundle.task.name == "multiclass" else ""
                print(f"  {kind}{name}: {prediction.probabilities[name]:.3f}")
            for path in overlays.get(prediction.image, []):
                print(f"  heatmap: {path}")
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return EXIT_USER_ERROR if errors else 0


if __name__ == "__main__":
    sys.exit(run(main))
