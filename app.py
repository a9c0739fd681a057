"""The web app: python app.py [--model outputs/], then open http://127.0.0.1:7860 and upload a photo."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from defect_tf.cli import run
from defect_tf.bundle import load_bundle
from defect_tf.prediction import Predictor
from defect_tf.webapp import MAX_UPLOAD_MB, DefectApp, build_page

SAMPLES = 4


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="outputs", help="bundle folder, or the output folder train.py wrote")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0: the whole network)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--max-upload-mb", type=float, default=MAX_UPLOAD_MB,
                        help=f"larger uploads are refused with a message (default {MAX_UPLOAD_MB})")
    parser.add_argument("--samples", nargs="*", metavar="IMAGE",
                        help=f"sample photos offered on the page (default: {SAMPLES} from the model's test split)")
    return parser.parse_args(argv)


def default_samples(bundle) -> list[str]:
    """A few test-split images of the bundle's own data, where they still exist."""
    images = [Path(bundle.metadata["data_dir"]) / name for name in bundle.metadata["split"]["test"]]
    return [str(path) for path in images if path.is_file()][:SAMPLES]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bundle = load_bundle(args.model)
    samples = args.samples if args.samples is not None else default_samples(bundle)
    page = build_page(DefectApp(Predictor(bundle), args.max_upload_mb), samples)
    print(f"serving model {bundle.path} on http://{args.host}:{args.port} (Ctrl-C to stop)", flush=True)
    page.launch(server_name=args.host, server_port=args.port, show_error=True,
                allowed_paths=[str(Path(sample).resolve().parent) for sample in samples])
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
