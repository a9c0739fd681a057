"""What every benchmark shares: finding the data, training and scoring runs, and recording results.

Each benchmark writes `docs/benchmarks/<name>.json` (figures, command, date, machine) and then
`docs/benchmarks.md` is rebuilt from all of them, so the page always shows the latest run of each.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from defect_tf.apps import quiet_start  # noqa: F401  (first: holds TensorFlow's start-up chatter back)
from defect_tf.apps.cli import run  # noqa: F401  (re-exported for the scripts)
from defect_tf.bundle.layout import BUNDLE_DIR, METADATA_FILE
from defect_tf.bundle.metadata import BundleMetadata
from defect_tf.bundle.store import load_bundle
from defect_tf.data.augmentation import ROTATIONS
from defect_tf.data.labels import LabelTable, parse_labels
from defect_tf.data.splits import read_split, split_from_file, stratified_split, write_split
from defect_tf.errors import DefectTFError
from defect_tf.evaluate.evaluation import METRICS_FILE, evaluate_bundle
from defect_tf.models.heads import DEFAULT_POOLING, POOLING
from defect_tf.train.checkpoints import CHECKPOINT_DIR, read_checkpoint
from defect_tf.train.config import TrainConfig, checkpoint_settings, config_from_settings
from defect_tf.train.trainer import resume_training, train

ROOT = Path(__file__).resolve().parents[1]

RESULTS = ROOT / "docs" / "benchmarks"
PAGE = ROOT / "docs" / "benchmarks.md"
DEFAULT_DATA_ROOT = ROOT.parent / "shared" / "data"


def data_folder(data_root: str | Path, name: str) -> Path:
    """`<data_root>/<name>`, or a clear error saying it is absent (the data is never in the repository)."""
    folder = Path(data_root) / name
    if not (folder / "images").is_dir() or not (folder / "labels.txt").is_file():
        raise DefectTFError(f"benchmark data {name!r} not found in {folder} (expected images/ and labels.txt); "
                            "pass --data-root DIR pointing at the folder that holds neu/ and multilabel/")
    return folder


def machine() -> str:
    import tensorflow as tf

    return (f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU" if not tf.config.list_physical_devices("GPU")
            else f"{platform.machine()}, {os.cpu_count()} CPU cores, GPU") + f", TensorFlow {tf.__version__}"


def as_a_user_types_it(arguments: list[str]) -> list[str]:
    """A benchmark's arguments as a user would run them: `--data-root` at its default left out, another data root
    and every path under the project relative to it, a work folder in a temporary place as `runs/NAME`."""
    out, index = [], 0
    while index < len(arguments):
        flag, value = arguments[index], arguments[index + 1] if index + 1 < len(arguments) else None
        if flag == "--data-root" and value is not None:
            index += 2
            if Path(value).resolve() != DEFAULT_DATA_ROOT.resolve():
                out += [flag, os.path.relpath(Path(value).resolve(), ROOT)]
            continue
        if flag == "--work" and value is not None and not Path(value).resolve().is_relative_to(ROOT.resolve()):
            out += [flag, f"runs/{Path(value).name}"]
            index += 2
            continue
        out.append(os.path.relpath(flag, ROOT) if flag.startswith(str(ROOT)) else flag)
        index += 1
    return out


def command_line() -> str:
    arguments = [os.path.relpath(sys.argv[0], ROOT), *as_a_user_types_it(sys.argv[1:])]
    return "python " + " ".join(shlex.quote(arg) for arg in arguments)


def shared_split(folder: Path, labels: Path, work: Path, seed: int) -> Path:
    """One complete train / val / test split for every arm of a comparison: the data set's own
    `split.txt` (val carved out of its train part) or else a seeded stratified split of `labels`."""
    table = parse_labels(labels)
    if (folder / "split.txt").is_file():
        split = split_from_file(folder / "split.txt", table.images, table.values, seed=seed)
    else:
        split = stratified_split(table.values, seed=seed)
    path = work / "split.txt"
    write_split(path, table.images, split)
    return path


def fewshot_parts(table: LabelTable, split: dict[str, str], per_class: int, seed: int) -> dict[str, str]:
    """Image -> part for a few-shot arm: `per_class` images of each class drawn from the split's train + val part
    (one in five of them, at least one per class, for validation), and every test image."""
    rng = np.random.default_rng(seed)
    parts = {image: "test" for image in table.images if split[image] == "test"}
    for column in range(len(table.attributes)):
        members = [i for i, image in enumerate(table.images)
                   if table.values[i, column] == 1 and split[image] in ("train", "val")]
        for order, index in enumerate(sorted(rng.choice(members, per_class, replace=False))):
            parts[table.images[index]] = "val" if order < max(1, per_class // 5) else "train"
    return parts


def work_folder(work: str | None, prefix: str) -> Path:
    """The benchmark's folder for its runs: `--work` (a rerun there continues) or a new temporary folder."""
    folder = Path(work or tempfile.mkdtemp(prefix=prefix))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def add_data_options(parser: argparse.ArgumentParser, backbone: str, image_size: int, batch_size: int) -> None:
    """Where the shared data is, and the model and input size a benchmark trains."""
    parser.add_argument("--data-root", default=str(DEFAULT_DATA_ROOT))
    parser.add_argument("--backbone", default=backbone)
    parser.add_argument("--image-size", type=int, default=image_size)
    parser.add_argument("--batch-size", type=int, default=batch_size)


def add_comparison_options(parser: argparse.ArgumentParser) -> None:
    """The settings every arm of one comparison shares (small and short by default: CPU time is finite)."""
    add_data_options(parser, backbone="small_cnn", image_size=64, batch_size=16)
    parser.add_argument("--weights", default="none", choices=["none", "imagenet"],
                        help="imagenet: every arm starts from the backbone's ImageNet weights (two-phase recipe)")
    parser.add_argument("--warmup-epochs", type=int, default=8)
    parser.add_argument("--finetune-epochs", type=int, default=4)
    parser.add_argument("--pooling", default=DEFAULT_POOLING, choices=sorted(POOLING))
    parser.add_argument("--rotation", default="free", choices=ROTATIONS, help="augmentation's rotation")
    parser.add_argument("--no-cutout", dest="cutout", action="store_false", help="no Cutout augmentation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", help="folder for the runs (default: a temporary folder)")


def comparison_name(args: argparse.Namespace) -> tuple[str, str]:
    """A comparison run's file-name part and title part, from the settings that tell runs apart."""
    backbone = [] if args.backbone == "small_cnn" else [args.backbone]
    pretrained = args.weights == "imagenet"
    quarter = args.rotation == "quarter"
    name = [*backbone, *(["imagenet"] if pretrained else []), f"{args.image_size}px", args.pooling,
            *(["quarter"] if quarter else []), *([] if args.cutout else ["nocutout"]),
            f"{args.warmup_epochs}+{args.finetune_epochs}", f"seed{args.seed}"]
    title = [*backbone, *(["ImageNet weights"] if pretrained else []), f"{args.image_size} px",
             *([] if args.pooling == DEFAULT_POOLING else [f"{args.pooling} pooling"]),
             *(["quarter turns"] if quarter else []),
             *([] if args.cutout else ["no Cutout"]), f"{args.warmup_epochs} + {args.finetune_epochs} epochs",
             f"seed {args.seed}"]
    return "_".join(name), ", ".join(title)


def comparison_config(args: argparse.Namespace, folder: Path, split_file: Path) -> TrainConfig:
    """The training settings of one comparison's arms, on `folder`'s images and one split; each arm then
    sets its own labels, output and whatever it varies."""
    return TrainConfig(data=str(folder / "images"), labels="", backbone=args.backbone, weights=args.weights,
                       image_size=args.image_size, batch_size=args.batch_size, warmup_epochs=args.warmup_epochs,
                       finetune_epochs=args.finetune_epochs, pooling=args.pooling, rotation=args.rotation,
                       cutout=args.cutout, seed=args.seed, split_file=str(split_file))


def start_comparison(args: argparse.Namespace, folder: Path, split_labels: Path, kind: str) -> tuple[Path, TrainConfig]:
    """A comparison's work folder and the settings its arms share: one split of `split_labels` for every arm."""
    work = work_folder(args.work, f"{kind}_")
    return work, comparison_config(args, folder, shared_split(folder, split_labels, work, args.seed))


def mean_known(values: list) -> float | None:
    """Mean over the attributes where a figure exists (AP and AUC are None without positives)."""
    known = [value for value in values if value is not None]
    return sum(known) / len(known) if known else None


FIGURES = ("macro_f1", "macro_f1_at_0.5", "mean_ap", "mean_auc", "single_label_images", "exact_match", "top1_accuracy",
           "per_attribute_f1", "test_images")


def trained_with(output: Path, config: TrainConfig) -> bool:
    """Whether `output` holds a finished model trained with exactly `config` (by an earlier run of the benchmark)."""
    saved = output / BUNDLE_DIR / METADATA_FILE
    return saved.is_file() and config_from_settings(
        BundleMetadata.from_json(json.loads(saved.read_text(encoding="utf-8")), str(saved)).settings) == config


def train_and_score(config: TrainConfig, truth_labels: str | Path | None, log_file: Path) -> dict:
    """Train one arm (log to a file), then score its test split against `truth_labels`; returns figures.
    Without `truth_labels`, the figures are the run's own test report (metrics.json, as its task wrote it).

    A stopped benchmark loses no finished epoch: run the same command with the same `--work` again, and an
    arm already trained with the same settings is only scored, an interrupted one continues from its last
    epoch. Its training time is the sum of its epochs' wall times, across interruptions.
    An arm whose training stops with an error (say, a diverged loss) gets None figures and `failed`.
    """
    output = Path(config.output)
    started = time.time()
    if not trained_with(output, config):
        with open(log_file, "a", encoding="utf-8") as log:
            say = lambda *parts: print(*parts, file=log, flush=True)
            try:
                if (output / CHECKPOINT_DIR).exists():
                    resume_interrupted(output, config, say)
                else:
                    train(config, log=say)
            except DefectTFError as error:  # e.g. diverged: a result of the comparison, not the end of it
                print(f"error: {error}", file=log)
                return {key: None for key in FIGURES} | {"failed": str(error), "epochs": "-",
                                                         "train_seconds": round(time.time() - started, 1)}
    history = json.loads((output / "history.json").read_text(encoding="utf-8"))
    seconds = sum(record["seconds"] for record in history)
    if truth_labels is None:
        report = json.loads((output / METRICS_FILE).read_text(encoding="utf-8"))
        return {"report": report, "epochs": len(history), "train_seconds": round(seconds, 1)}
    split_file = config.split_file or output / "split.txt"  # without a shared split, the one training made
    return score_arm(output, config.data, truth_labels, split_file) | {"train_seconds": round(seconds, 1)}


def resume_interrupted(output: Path, config: TrainConfig, log) -> None:
    """Continue the interrupted arm in `output`, which must have been started with the same settings."""
    if read_checkpoint(output).config != checkpoint_settings(config):
        raise DefectTFError(f"{output} holds an interrupted run with other settings; use another --work folder")
    log(f"continuing the interrupted run in {output}")
    resume_training(output, log=log)


def shared_test_rows(truth: LabelTable, split_file: str | Path) -> LabelTable:
    """The rows of `truth` in the comparison's shared test split: the same images for every arm, also for
    an arm whose own label file leaves some of them out (dropped rows)."""
    return truth.only(image for image, part in read_split(split_file).items() if part == "test")


def train_arms(arms: dict, truth_labels: str | Path, work: Path, describe) -> dict:
    """Train and score each arm (name -> TrainConfig) in turn, one line before and one after each."""
    results = {}
    for arm, config in arms.items():
        print(f"{arm}: {describe(arm)} (log: {work / arm}.log)", flush=True)
        result = results[arm] = train_and_score(config, truth_labels, work / f"{arm}.log")
        print(f"  macro F1 {number(result['macro_f1'])} (at 0.5: {number(result['macro_f1_at_0.5'])}), mean AP "
              f"{number(result['mean_ap'])}, {result['train_seconds']:.0f} s", flush=True)
    return results


def score_arm(bundle_dir: str | Path, data_dir: str | Path, truth_labels: str | Path, split_file: str | Path) -> dict:
    """One arm's figures: its model scored on the shared test split against `truth_labels`."""
    bundle = load_bundle(bundle_dir)
    table = shared_test_rows(parse_labels(truth_labels), split_file)
    report = evaluate_bundle(bundle, data_dir, table, Path(bundle_dir) / "truth")
    return {"macro_f1": report["calibrated"]["macro"]["f1"], "macro_f1_at_0.5": report["at_0.5"]["macro"]["f1"],
            "mean_ap": mean_known(report["average_precision"]), "mean_auc": mean_known(report["roc_auc"]),
            "single_label_images": report["single_label_images"], "exact_match": report["calibrated"]["exact_match"],
            "top1_accuracy": report["top1_accuracy"], "per_attribute_f1": report["calibrated"]["per_attribute"]["f1"],
            "test_images": report["images"], "epochs": bundle.metadata.epochs_trained}


@contextlib.contextmanager
def running_service(arguments: list[str]) -> Iterator[tuple[str, subprocess.Popen]]:
    """`serve.py` with `arguments` on a free port of this machine, alive: (its address, its process); stopped
    after."""
    import socket

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, str(ROOT / "serve.py"), *arguments, "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                if server.poll() is not None:
                    raise RuntimeError(f"serve.py {' '.join(arguments)} stopped with exit status {server.returncode}")
                time.sleep(0.2)
        else:
            raise RuntimeError(f"serve.py {' '.join(arguments)} did not answer /health within a minute")
        yield url, server
    finally:
        server.terminate()
        server.wait(timeout=30)


def resident_mb(pid: int) -> float:
    """A process's resident memory now, in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024


def code_version() -> str:
    """The commit the benchmark ran on, marked when the library or benchmark code differed from it."""
    git = lambda *args: subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True).stdout.strip()
    try:
        commit = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--", "defect_tf", "benchmarks", "*.py")
    except OSError:
        return "unknown"
    return (commit or "unknown") + (" with uncommitted changes" if changed else "")


CODE_AT_START = code_version()  # the code this run loaded, even if the tree changes while it runs


def record(name: str, title: str, markdown: str, figures: dict) -> Path:
    """Save one benchmark's result and rebuild docs/benchmarks.md from every saved result."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"title": title, "date": str(date.today()), "machine": machine(), "code": CODE_AT_START,
              "command": command_line(),
              "markdown": markdown, "figures": figures}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=1), encoding="utf-8")
    rebuild_page()
    print(f"results: {path}; page: {PAGE}")
    return path


def rebuild_page() -> None:
    """docs/benchmarks.md from every saved result, so the page always shows the latest run of each."""
    sections = []
    for saved in sorted(RESULTS.glob("*.json")):
        item = json.loads(saved.read_text(encoding="utf-8"))
        sections.append(f"## {item['title']}\n\n{item['date']}, {item['machine']}; code at commit "
                        f"{item.get('code', 'unknown')}.\n\n"
                        f"```bash\n{item['command']}\n```\n\n{item['markdown']}\n")
    PAGE.write_text("# Benchmarks\n\nEach section is the latest run of one benchmark script, made by the command "
                    "shown at the commit shown (defaults change when a table shows a better one: the loss was focal "
                    "gamma 2 before commit 412b509; raw figures in `docs/benchmarks/*.json`). Data: `../shared/data` "
                    "(see its README files); it is never copied into this repository.\n\n" + "\n".join(sections), encoding="utf-8")


def test_images(results: dict) -> int | str:
    """How many test images the arms were scored on (every arm shares the split)."""
    return next((r["test_images"] for r in results.values() if r["test_images"]), "-")


def failures(results: dict) -> str:
    """The arms that failed, one line each, for under a comparison's table."""
    return "".join(f"\n\n{arm}: {r['failed']}" for arm, r in results.items() if r.get("failed"))


SCORE_COLUMNS = {"macro F1 (calibrated)": lambda r: number(r["macro_f1"]),
                 "macro F1 @ 0.5": lambda r: number(r["macro_f1_at_0.5"]),
                 "mean AP": lambda r: number(r["mean_ap"]), "mean AUC": lambda r: number(r["mean_auc"])}


def comparison_table(results: dict, arm_columns: dict[str, Callable[[str], str]],
                     extra_columns: dict[str, Callable[[dict], str]]) -> list[str]:
    """A comparison's Markdown table: one row per arm, with what the arm varies (`arm_columns`, from its name),
    the shared scores, `extra_columns` (from its figures), then epochs and training time."""
    header = ["arm", *arm_columns, *SCORE_COLUMNS, *extra_columns, "epochs", "train time"]
    rows = ["| " + " | ".join(header) + " |",
            "|" + "---|" * (1 + len(arm_columns)) + "---:|" * (len(header) - 1 - len(arm_columns))]
    for arm, r in results.items():
        cells = [arm, *(describe(arm) for describe in arm_columns.values()),
                 *(score(r) for score in SCORE_COLUMNS.values()), *(figure(r) for figure in extra_columns.values()),
                 str(r["epochs"]), f"{r['train_seconds']:.0f} s"]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def shared_settings(args: argparse.Namespace) -> str:
    """The sentence that says what every arm of a comparison shared."""
    start = "from its ImageNet weights" if args.weights == "imagenet" else "from scratch"
    return (f"`{args.backbone}` {start}, {args.image_size} px, {args.pooling} pooling, batch {args.batch_size}, "
            f"{'quarter turns, ' if args.rotation == 'quarter' else ''}{'' if args.cutout else 'no Cutout, '}"
            f"{args.warmup_epochs} + {args.finetune_epochs} epochs, seed {args.seed}; "
            "one split for all arms")


def publish_comparison(kind: str, title: str, args: argparse.Namespace, intro: str, table: list[str],
                       results: dict) -> Path:
    """Print a comparison's intro, table and failed arms, and record it as `<kind>_<settings>`. The intro may say
    `{settings}` (what every arm shared) and `{test_images}` (how many test images scored each arm)."""
    intro = intro.format(settings=shared_settings(args), test_images=test_images(results))
    markdown = f"{intro}\n\n" + "\n".join(table) + failures(results)
    print(markdown)
    name, settings_title = comparison_name(args)
    return record(f"{kind}_{name}", f"{title}, {settings_title}", markdown, {"settings": vars(args), "arms": results})


def number(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
