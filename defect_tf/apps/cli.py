"""Shared command-line behaviour: flags checked before any work, help that cannot fail, and every user error (a bad
flag value included) as one line with exit status 2.

Imports nothing heavy: `launch.py` starts TensorFlow quietly (`quiet.py`) before a program that needs it is
imported, so its start-up chatter is held back whatever order the program imports things in.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import math
import os
import re
import socket
import sys
from pathlib import Path
from typing import Callable

from defect_tf.errors import DefectTFError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # as a shell reports a process ended by SIGPIPE


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (`prog: error: ... (see prog --help)`) and exit status 2."""

    def __init__(self, **kwargs):
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(**kwargs)

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def format_help(self) -> str:
        """Help in which a `%` of a flag's text is a percent sign ("30% of images"), not a format code to fail on."""
        for action in self._actions:
            if isinstance(action.help, str) and not getattr(action, "percent_signs_escaped", False):
                action.help = re.sub(r"%(%|\()?", lambda found: found.group(0) if found.group(1) else "%%", action.help)
                action.percent_signs_escaped = True
        return super().format_help()


def number_in(kind: type, low: float, high: float, low_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite `kind` (int or float) from `low` to `high` (above `low` if `low_open`)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
        if not math.isfinite(value) or not (low < value if low_open else low <= value) or value > high:
            bound = f"above {low:g}" if low_open else f"from {low:g}"
            raise argparse.ArgumentTypeError(f"must be {bound} to {high:g}, not {text}")
        return value
    parse.__name__ = kind.__name__
    return parse


def _not_empty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path")
    return text


def existing_file(text: str) -> str:
    """An argparse type: a path to a file that exists."""
    if not Path(_not_empty(text)).is_file():
        raise argparse.ArgumentTypeError(f"{text}: " + ("not a file" if Path(text).exists() else "file not found"))
    return text


def existing_folder(text: str) -> str:
    """An argparse type: a path to a folder that exists."""
    if not Path(_not_empty(text)).is_dir():
        raise argparse.ArgumentTypeError(f"{text}: " + ("not a folder" if Path(text).exists() else "folder not found"))
    return text


def existing_path(text: str) -> str:
    """An argparse type: a path to a folder or a file that exists."""
    if not Path(_not_empty(text)).exists():
        raise argparse.ArgumentTypeError(f"{text}: no such folder or file")
    return text


def folder_to_write(text: str) -> str:
    """An argparse type: a folder that exists or can be created (not an existing file)."""
    if Path(_not_empty(text)).exists() and not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder")
    return text


def host_name(text: str) -> str:
    """An argparse type: a non-empty address to serve on (an empty one would mean every network interface)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty address; use 127.0.0.1 (this machine) or 0.0.0.0 (the network)")
    return text


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


def open_to_the_network(what: str, port: int) -> str:
    """The warning before a page or service without a login listens beyond this machine."""
    return (f"warning: the {what} has no login: anyone who can reach this machine on port {port} can use the model "
            "and upload files (--host 127.0.0.1 keeps it to this machine)")


def add_model_flag(parser: argparse.ArgumentParser) -> None:
    """--model: the trained bundle a program uses (default: where train.py writes it)."""
    from defect_tf.io.output_folder import DEFAULT_OUTPUT  # (imported here: the module imports this one's errors)

    parser.add_argument("--model", metavar="DIR", default=DEFAULT_OUTPUT, type=existing_path,
                        help="the output folder train.py wrote, its bundle folder, or a model file in it "
                             "(model.keras, model.onnx, model.tflite: that runtime)")


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """--json: machine-readable output for scripts."""
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout and nothing else")


@contextlib.contextmanager
def json_errors(enabled: bool):
    """With --json, a user error also prints `{"error": "..."}` on stdout, so a script reading stdout learns why."""
    try:
        yield
    except DefectTFError as error:
        if enabled:
            print(json.dumps({"error": str(error)}))
        raise


def run(main: Callable[[], int]) -> int:
    """Call `main`; a DefectTFError becomes `error: ...` on stderr and exit status 2, Ctrl-C exit status 130,
    and a full disk the one line of `defect_tf.io.files.DiskFullError`."""
    from defect_tf.io.files import is_disk_full

    try:
        return main()
    except DefectTFError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader of our output went away (`| head`): nothing more to say to it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as error:
        if not is_disk_full(error):
            raise
        print(f"error: disk full ({error}); nothing finished was replaced. Free some space and run the command again",
              file=sys.stderr)
        return EXIT_USER_ERROR

