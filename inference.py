"""Detect defects in photos with a trained bundle: python inference.py photo.jpg [more.jpg ...]"""

from __future__ import annotations

import argparse
import json
import sys

from defect_tf.cli import EXIT_USER_ERROR, run
from defect_tf.bundle import load_bundle
from defect_tf.prediction import Predictor


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("images", nargs="+", help="image files, predicted together as one batch")
    parser.add_argument("--model", default="outputs", help="bundle folder, or the output folder train.py wrote")
    parser.add_argument("--explain", metavar="DIR",
                        help="write a Grad-CAM overlay PNG per detected attribute into DIR (<image>_<attribute>.png)")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout and nothing else")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bundle = load_bundle(args.model)
    predictor = Predictor(bundle)
    predictions, errors = predictor.predict(args.images)
    overlays = {p.image: predictor.write_explanations(p, args.explain) for p in predictions} if args.explain else {}
    if args.json:
        records = [p.as_dict() for p in predictions]
        if args.explain:
            for record in records:
                record["overlays"] = [str(path) for path in overlays[record["image"]]]
        thresholds = dict(zip(bundle.attributes, map(float, bundle.thresholds)))
        print(json.dumps({"model": str(bundle.path), "thresholds": thresholds, "predictions": records,
                          "errors": [str(e) for e in errors]}, indent=1))
    else:
        for prediction in predictions:
            print(prediction.image)
            if not prediction.detected:
                print("  no defect detected")
            for name in prediction.detected:
                print(f"  {name}: {prediction.probabilities[name]:.3f}")
            for path in overlays.get(prediction.image, []):
                print(f"  heatmap: {path}")
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return EXIT_USER_ERROR if errors else 0


if __name__ == "__main__":
    sys.exit(run(main))
