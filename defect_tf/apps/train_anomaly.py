"""Train an anomaly localiser on intact photos: python train.py --task anomaly --data intact_photos/
(or --labels FILE with one attribute: the rows labelled 0 are fitted on, those labelled 1 set and test the
thresholds). It outlines defects it has never seen: python inference.py PHOTO --localize OUT_DIR.
"""

from __future__ import annotations

import sys
from pathlib import Path

from defect_tf.anomaly.draem.model import saved_epoch
from defect_tf.anomaly.registry import ANOMALY_MODELS
from defect_tf.anomaly.training import CHECKPOINT_DIR, LocalizerConfig, train_localizer
from defect_tf.apps.cli import EXIT_INTERRUPTED, Parser, existing_file, existing_folder, number_in, run
from defect_tf.errors import DefectTFError
from defect_tf.models.registry import BACKBONES

DEFAULTS = LocalizerConfig(data="")


def build_parser():
    d = DEFAULTS
    parser = Parser(prog="train.py --task anomaly", description=__doc__)
    parser.add_argument("--task", choices=["anomaly"], required=True, help="an anomaly localiser")
    data = parser.add_argument_group("data")
    data.add_argument("--data", metavar="DIR", type=existing_folder,
                      help="the photos: all intact, or the label file's paths are relative to it (required unless "
                           "--resume)")
    data.add_argument("--labels", metavar="FILE", type=existing_file,
                      help="`image defect` rows: 0 intact (fitted on), 1 defective (thresholds and test), NA left out")
    data.add_argument("--masks", metavar="DIR", type=existing_folder,
                      help="defect masks: IMAGE_STEM.png per defective photo, non-zero on the defect, its size")
    data.add_argument("--types", metavar="FILE", type=existing_file,
                      help="`image type` rows: the test report per defect type")
    data.add_argument("--split-file", metavar="FILE", type=existing_file,
                      help="`image train|val|test` rows (val carved out of the intact train photos if absent)")
    data.add_argument("--on-bad-image", choices=["error", "skip"], default=d.on_bad_image,
                      help="unreadable photos: stop, listing all (error), or leave them out (skip)")
    model = parser.add_argument_group("model")
    model.add_argument("--model", default=d.model, choices=sorted(ANOMALY_MODELS),
                       help="; ".join(f"{name}: {entry.summary}" for name, entry in ANOMALY_MODELS.items()))
    model.add_argument("--backbone", default=d.backbone,
                       choices=sorted(name for name, entry in BACKBONES.items() if entry.imagenet is not None),
                       help="the pretrained features (efficientnet_lite0 needs no network)")
    model.add_argument("--image-size", type=number_in(int, 32, 1024), default=d.image_size,
                       help="the shorter side of the model's input, aspect ratio kept (default: the model's own: "
                            + ", ".join(f"{name} {entry.default_size}" for name, entry in ANOMALY_MODELS.items())
                            + ")")
    model.add_argument("--coreset-size", type=number_in(int, 100, 1_000_000), default=d.coreset_size,
                       help="patchcore: memory-bank rows kept (more: slower, finer)")
    model.add_argument("--epochs", type=number_in(int, 1, 10_000), default=d.epochs,
                       help="draem: passes over the intact photos (about 50 s each for 700 photos at 128 px, 2 cores)")
    model.add_argument("--no-defect-head", dest="defect_head", action="store_false",
                       help="patchcore: do not learn from the validation photos' defect masks (by default, with at "
                            "least 5 of them, a head learns what the memory bank misses and sharpens the outline)")
    model.add_argument("--whole-defect-head", action="store_true",
                       help="patchcore: the head may also lower the map where it sees no defect it knows: sharper "
                            "outlines when every defect type to come is among the masks, worse ones for a type "
                            "that is not (by default it only adds; docs/findings.md)")
    model.add_argument("--seed", type=number_in(int, 0, 2**32 - 1), default=d.seed, help="fixes split and sampling")
    parser.add_argument("--output", metavar="DIR", default=d.output,
                        help="folder for the localiser, split and test metrics (outputs/localizer: beside the "
                             "classifier in outputs, the two stages of one pipeline)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted run in --output from its last epoch, with its own settings")
    return parser


def interrupted(output: str) -> str:
    """The line a user reads after interrupting a run writing into `output`."""
    try:
        state = saved_epoch(Path(output) / CHECKPOINT_DIR)
    except DefectTFError:
        state = None
    if state is None:
        return ("interrupted: nothing of this run was saved (a localiser is saved whole or not at all); run the "
                "same command again")
    return (f"interrupted; the last completed epoch ({state['epoch']}) is saved. Continue from it with: python train.py "
            f"--task anomaly --resume --output {output}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    arguments = vars(parser.parse_args(argv))
    arguments.pop("task")
    if not arguments["data"] and not arguments["resume"]:
        parser.error("the following arguments are required: --data (or --resume with --output)")
    if arguments["whole_defect_head"] and not arguments["defect_head"]:
        parser.error("--whole-defect-head needs the defect head: leave out --no-defect-head")
    arguments["data"] = arguments["data"] or ""
    try:
        train_localizer(LocalizerConfig(**arguments))
    except KeyboardInterrupt:
        print(interrupted(arguments["output"]), file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
