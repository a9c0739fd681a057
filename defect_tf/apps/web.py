"""The web app: python app.py [--model outputs/], then open http://127.0.0.1:7860 and upload a photo."""

from __future__ import annotations

import ipaddress
import signal
import socket
import sys
from pathlib import Path

from defect_tf.apps.cli import (
    Parser,
    add_model_flag,
    existing_file,
    host_name,
    number_in,
    run,
)
from defect_tf.apps.web_page import KEEP_UPLOADS_SECONDS, MAX_UPLOAD_MB, DefectApp, build_page
from defect_tf.bundle.store import load_bundle
from defect_tf.errors import DefectTFError
from defect_tf.inference.predictor import Predictor

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


def check_address(host: str, port: int) -> None:
    """Stop with one line if the page could not be served at host:port (unknown address, port in use)."""
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as error:
        raise DefectTFError(f"--host {host}: not an address this machine can serve on ({error.strerror})") from None
    with socket.socket(family, kind, protocol) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the web server itself binds
        try:
            probe.bind(address)
        except OSError as error:
            raise DefectTFError(f"cannot serve on {host}:{port} ({error.strerror}); another program may be using "
                                "that port: choose another with --port") from None


def is_loopback(host: str) -> bool:
    """Whether every address `host` names is this machine's own (127.0.0.1, ::1, localhost)."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
        return all(ipaddress.ip_address(address.split("%")[0]).is_loopback for address in addresses)
    except (socket.gaierror, ValueError):
        return False


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
        print(f"warning: the page has no login: anyone who can reach this machine on port {args.port} can use the "
              "model and upload files (--host 127.0.0.1 keeps it to this machine)", file=sys.stderr)
    bundle = load_bundle(args.model)
    samples = args.samples if args.samples is not None else default_samples(bundle)
    page = build_page(DefectApp(Predictor(bundle), args.max_upload_mb), samples, args.keep_uploads)
    print(f"serving model {bundle.path} on http://{args.host}:{args.port} (Ctrl-C to stop)", flush=True)
    page.launch(server_name=args.host, server_port=args.port, show_error=True,
                max_file_size=int(args.max_upload_mb * 1024 * 1024))
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
