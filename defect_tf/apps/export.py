"""Export a trained bundle for the line: python export.py --model outputs --format onnx|litert|saved_model

The exported model goes into the bundle folder beside model.keras, takes RGB values 0-255 at the model's size and
returns probabilities; its parity with the Keras model is measured on the test split and recorded in bundle.json.
inference.py then uses it without TensorFlow (ONNX Runtime or LiteRT).

An anomaly localiser (--model outputs/localizer) exports its network to ONNX, its maps compared with Keras's on
its own test photos; a classifier with a localiser beside it (outputs/localizer/) exports both with --format onnx,
so inference.py --localize runs both stages without TensorFlow.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from defect_tf.anomaly.runtimes import EXPORT_FORMAT
from defect_tf.anomaly.store import LOCALIZER_DIR, has_localizer
from defect_tf.apps.cli import Parser, add_model_flag, run
from defect_tf.bundle.layout import holds_classifier
from defect_tf.export.exporter import export_bundle
from defect_tf.export.formats import FORMATS, QUANTIZATIONS
from defect_tf.export.localizer import export_localizer


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_flag(parser)
    parser.add_argument("--format", default="onnx", choices=list(FORMATS),
                        help="; ".join(f"{name}: {export.description}" for name, export in FORMATS.items()))
    parser.add_argument("--int8", nargs="?", const="full", default="none", choices=QUANTIZATIONS[1:],
                        metavar="dynamic|full",
                        help="litert: int8 weights (dynamic) or weights and activations calibrated on training "
                             "images (full, the default with --int8)")
    parser.add_argument("--accept-drop", action="store_true",
                        help="keep an export that misses its parity goal (float32: no decision changed; int8: "
                             "macro F1 within half a point)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not holds_classifier(args.model) and has_localizer(args.model):
        export_localizer(args.model, args.format, args.accept_drop)
        print(f"inference.py PHOTO --model {args.model} --localize OUT_DIR now runs it with ONNX Runtime, without "
              "TensorFlow (--runtime keras for the Keras model)")
        return 0
    record = export_bundle(args.model, args.format, args.int8, args.accept_drop)
    runtime = {"onnx": "ONNX Runtime", "litert": "LiteRT", "tensorflow": "TensorFlow"}[record.runtime]
    if has_localizer(Path(args.model) / LOCALIZER_DIR):
        if args.format == EXPORT_FORMAT:
            export_localizer(Path(args.model) / LOCALIZER_DIR, args.format, args.accept_drop)
        else:
            print(f"note: the localiser in {Path(args.model) / LOCALIZER_DIR} exports to --format {EXPORT_FORMAT} "
                  "only; it was left as it is")
    if record.runtime != "tensorflow":
        print(f"inference.py --model {args.model} now runs it with {runtime}, without TensorFlow "
              "(--runtime keras for the Keras model)")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
