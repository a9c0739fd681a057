"""The web app: python app.py [--model outputs/], then open http://127.0.0.1:7860 and upload a photo. With an
anomaly localiser beside the classifier (outputs/localizer/), a photo called damaged is also outlined."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from defect_tf.anomaly.store import has_localizer, load_localizer
from defect_tf.apps.cli import (
    Parser,
    add_model_flag,
    check_address,
    existing_file,
    host_name,
    is_loopback,
    number_in,
    open_to_the_network,
    run,
)
from defect_tf.apps.web_page import KEEP_UPLOADS_SECONDS, MAX_UPLOAD_MB, DefectApp, build_page
from defect_tf.bundle.store import load_bundle
from defect_tf.inference.predictor import Predictor
from defect_tf.runtime.select import open_inferencer, runtime_of_file

SAMPLES = 4


def build_parser() -> Parser:
    parser = Parser(description=__doc__)
    add_model_flag(parser)
    parser.add_argument("--host", default="127.0.0.1", type=host_name, help="address to serve on (0.0.0.0: the whole network)")
    parser.add_argument("--port", type=number_in(int, 1, 65535), default=7860)
    parser.add_argument("--max-upload-mb", type=number_in(float, 0, 10_000, low_open=True), default=MAX_UPLOAD_MB,
                        help="larger uploads are refused while they arrive; nothing of them is stored")
    parser.add_argument("--keep-uploads", metavar="SECONDS", type=number_in(int, 1, 86_400),
                        default=KEEP_UPLOADS_SECONDS,
                        help="uploads are deleted this long after they arrive (all of them when the app stops)")
    parser.add_argument("--samples", nargs="*", metavar="IMAGE", type=existing_file,
                        help=f"sample photos offered on the page (default: {SAMPLES} from the model's test split)")
    return parser


def default_samples(bundle) -> list[str]:
    """A few test-split images of the bundle's own data, where they still exist."""
    images = [Path(bundle.metadata.data_dir) / name for name in bundle.metadata.split.get("test", [])]
    return [str(path) for path in images if path.is_file()][:SAMPLES]


def _stop(signum, frame):
    raise KeyboardInterrupt  # Gradio closes the server; the private upload folder is removed at exit


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    check_address(args.host, args.port)
    if not is_loopback(args.host):
        print(open_to_the_network("page", args.port), file=sys.stderr)
    bundle = load_bundle(args.model)
    _, runtime = runtime_of_file(args.model, "keras" if Path(args.model).is_dir() else "auto")
    inferencer = None if runtime == "keras" else open_inferencer(args.model, runtime)  # a model file given: it answers
    samples = args.samples if args.samples is not None else default_samples(bundle)
    localizer = load_localizer(args.model) if has_localizer(args.model) else None
    page = build_page(DefectApp(Predictor(bundle), args.max_upload_mb, inferencer, localizer), samples,
                      args.keep_uploads)
    answered = inferencer.describe() if inferencer else f"Keras ({bundle.path / 'model.keras'})"
    print(f"serving {answered} on http://{args.host}:{args.port} (Ctrl-C to stop)", flush=True)
    page.launch(server_name=args.host, server_port=args.port, show_error=True,
                max_file_size=int(args.max_upload_mb * 1024 * 1024))
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
