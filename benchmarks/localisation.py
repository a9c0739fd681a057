"""Heatmap localisation on the demo data: how often the heatmap's peak falls inside the true defect.

    python benchmarks/localisation.py [--model outputs] [--root .]

Scores the model's test split (correctly detected defects only) against the masks the demo
generator wrote (`<root>/masks/`), prints a table and writes docs/localisation.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import date
from pathlib import Path

from common import CODE_AT_START, number

from defect_tf.apps.cli import run
from defect_tf.bundle.store import load_bundle
from defect_tf.data.demo import mask_path
from defect_tf.data.labels import parse_labels
from defect_tf.errors import DefectTFError
from defect_tf.explain.heatmap_scores import score_localisation
from defect_tf.explain.heatmaps import CAM_METHODS
from defect_tf.models.registry import get_backbone

DOCS = Path(__file__).resolve().parents[1] / "docs"
METHOD_NAMES = {"gradcam": "Grad-CAM", "layercam": "LayerCAM"}


def markdown_table(scores: dict) -> str:
    lines = ["| attribute | correctly detected defects | peak inside the defect | mean IoU (heatmap ≥ ½ peak) |",
             "|---|---:|---:|---:|"]
    for name, row in [*scores["per_attribute"].items(), ("**all**", scores["overall"])]:
        lines.append(f"| {name} | {row['defects']} | {number(row['peak_inside'])} | {number(row['mean_iou'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="outputs", help="a bundle trained on the demo data (make demo)")
    parser.add_argument("--root", default=".", help="the folder holding the demo's images/, masks/ and labels.txt")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--layer", help="another backbone layer than the registry's heatmap layer (a comparison: "
                                        "docs/ files are then left alone)")
    parser.add_argument("--method", choices=CAM_METHODS, help="another heatmap method than the registry's (a "
                                                              "comparison: docs/ files are then left alone)")
    args = parser.parse_args(argv)
    root = Path(args.root)
    if not (root / "masks").is_dir():
        raise DefectTFError(f"no demo masks in {root / 'masks'}: run `python -m defect_tf.data.demo --root {root}` "
                            "(or `make demo`) first")
    bundle = load_bundle(args.model)
    table = parse_labels(root / "labels.txt")
    table = table.only(bundle.metadata.split[args.split])
    started = time.time()
    scores = score_localisation(bundle, root / "images", table, lambda image, name: mask_path(root, image, name),
                                args.layer, args.method)
    seconds = time.time() - started
    backbone = get_backbone(bundle.metadata.backbone)
    layer, method = args.layer or backbone.cam_layer, args.method or backbone.cam_method
    command = (f"python benchmarks/localisation.py --model {args.model} --root {args.root} --split {args.split}"
               + (f" --layer {args.layer}" if args.layer else "") + (f" --method {args.method}" if args.method else ""))
    header = (f"Measured {date.today()} on {platform.machine()} ({platform.node() or 'this machine'}), "
              f"code at commit {CODE_AT_START}, "
              f"model {bundle.metadata.backbone} at {bundle.image_size} px trained by `make demo`; "
              f"{len(table.images)} {args.split} images; {METHOD_NAMES[method]} on layer "
              f"`{layer}`; {seconds:.1f} s for all of them.\n\nCommand: `{command}`")
    text = f"{header}\n\n{markdown_table(scores)}\n"
    print(text)
    if args.layer or args.method:
        return 0
    DOCS.mkdir(exist_ok=True)
    (DOCS / "localisation.md").write_text(f"# Heatmap localisation on the demo data\n\n{text}", encoding="utf-8")
    (DOCS / "localisation.json").write_text(json.dumps({"command": command, "date": str(date.today()),
                                                        "seconds": seconds, **scores}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
