"""The `defect-tf` command: one entry point for every program (`defect-tf train ...` = `python train.py ...`)."""

from __future__ import annotations

import sys

from defect_tf.apps.cli import EXIT_USER_ERROR
from defect_tf.apps.launch import launch

# command -> (module under defect_tf.apps, flags put in front of the user's, what it does)
COMMANDS = {
    "train": ("train", [], "train a model (python train.py)"),
    "check": ("train", ["--check"], "check labels and images without training (python train.py --check)"),
    "prepare": ("prepare", [], "write a large training set once as shards for train.py (python prepare.py)"),
    "predict": ("predict", [], "label photos with a trained model (python inference.py)"),
    "evaluate": ("evaluate", [], "score a trained model on labelled images (python evaluate.py)"),
    "export": ("export", [], "export a model to ONNX, LiteRT or SavedModel, parity proved (python export.py)"),
    "serve": ("serve", [], "the HTTP service: POST /predict with images, JSON back (python serve.py)"),
    "web": ("web", [], "the web page: upload a photo, see its defects and heatmaps (python app.py)"),
    "demo": ("demo", [], "generate the demo photos here, train on them, evaluate, label one (make demo)"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help_text}" for name, (_, _, help_text) in COMMANDS.items()]
    header = "usage: defect-tf COMMAND [flags]   (defect-tf COMMAND --help for its flags)\n\ncommands:\n"
    return header + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else EXIT_USER_ERROR
    if argv[0] not in COMMANDS:
        print(f"defect-tf: error: unknown command {argv[0]!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return EXIT_USER_ERROR
    module_name, flags, _ = COMMANDS[argv[0]]
    program_name, sys.argv[0] = sys.argv[0], f"defect-tf {argv[0]}"  # its --help and errors name the command typed
    try:
        return launch(module_name, [*flags, *argv[1:]])
    finally:
        sys.argv[0] = program_name


if __name__ == "__main__":
    sys.exit(main())
