"""The HTTP service: python serve.py --model outputs, then POST images to http://127.0.0.1:8000/predict

  curl -F image=@photo.jpg http://127.0.0.1:8000/predict      the JSON of inference.py --json
  GET /health, GET /model                                      alive?; attributes, thresholds, task, runtime
  python serve.py --model outputs --localize                   also outline what the classifier calls damaged
                                                               (a localiser alone: every photo it calls defective)

The model is loaded once (an exported one, without TensorFlow, where the bundle has one); requests that arrive
together share a forward pass. It listens on this machine only unless --host says otherwise, and has no login.
"""

from __future__ import annotations

import argparse
import sys

from defect_tf.apps.cli import (
    Parser,
    add_model_flag,
    check_address,
    host_name,
    is_loopback,
    number_in,
    open_to_the_network,
    run,
)
from defect_tf.limits import MAX_CONCURRENT_REQUESTS, MAX_FILES_PER_REQUEST, MAX_REQUEST_MB
from defect_tf.runtime.select import RUNTIMES, open_inferencer

PORT = 8000


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_flag(parser)
    parser.add_argument("--host", default="127.0.0.1", type=host_name,
                        help="address to serve on (0.0.0.0: the whole network)")
    parser.add_argument("--port", type=number_in(int, 1, 65535), default=PORT)
    parser.add_argument("--runtime", default="auto", choices=["auto", *RUNTIMES],
                        help="auto: the bundle's exported model if it has one (onnx, then litert), else keras")
    parser.add_argument("--threads", type=number_in(int, 1, 256),
                        help="threads the runtime computes with (default: one per core)")
    parser.add_argument("--localize", action="store_true",
                        help="two stages: each photo the classifier calls damaged is also outlined by the anomaly "
                             "localiser in --model (its localizer/ folder): its area and boxes, as inference.py "
                             "--localize --json gives them; a localiser without a classifier answers every photo")
    parser.add_argument("--max-request-mb", type=number_in(float, 0, 10_000, low_open=True), default=MAX_REQUEST_MB,
                        help="larger requests are refused (413) while they arrive")
    parser.add_argument("--max-files", type=number_in(int, 1, 10_000), default=MAX_FILES_PER_REQUEST,
                        help="images one request may hold")
    parser.add_argument("--max-concurrent", type=number_in(int, 1, 100_000), default=MAX_CONCURRENT_REQUESTS,
                        help="requests in flight at once; more are answered 503 at once")
    return parser


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    from defect_tf.apps.service import ServiceLimits, create_app

    args = build_parser().parse_args(argv)
    check_address(args.host, args.port)
    if not is_loopback(args.host):
        print(open_to_the_network("service", args.port), file=sys.stderr)
    inferencer, localizer = open_models(args)
    limits = ServiceLimits(max_request_bytes=int(args.max_request_mb * 1024 * 1024), max_files=args.max_files,
                           max_concurrent=args.max_concurrent)
    app = create_app(inferencer, limits, localizer)
    stages = ", then ".join(model.describe() for model in (inferencer, localizer) if model is not None)
    print(f"serving {stages} on http://{args.host}:{args.port} (POST /predict, GET /health, "
          "GET /model; Ctrl-C to stop)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


def open_models(args) -> tuple:
    """(the classifier's inferencer or None, the localiser or None) that --model and --localize name: with
    --localize the classifier is optional (a localiser alone answers every photo); without it, required."""
    from defect_tf.anomaly.store import has_localizer, load_localizer
    from defect_tf.bundle.layout import holds_classifier
    from defect_tf.errors import BundleError

    if not args.localize:
        if not holds_classifier(args.model) and has_localizer(args.model):
            raise BundleError(f"{args.model} holds an anomaly localiser and no classifier: serve it with --localize")
        return open_inferencer(args.model, args.runtime, args.threads), None
    localizer = load_localizer(args.model, args.runtime, args.threads)
    inferencer = open_inferencer(args.model, args.runtime, args.threads) if holds_classifier(args.model) else None
    return inferencer, localizer


if __name__ == "__main__":
    sys.exit(run(main))
