"""Throughput side by side in one run: does the input pipeline keep the model busy?

    python benchmarks/throughput.py [--data-root ../shared/data] [--backbone efficientnet_b0] [--image-size 128]
                                    [--augment heavy]

Same model, batch and image size throughout, on NEU's JPEG files:
(a) the input pipeline alone (first epoch: read + decode + cache; then cached epochs),
(b) the training step alone on one batch held in memory (the limit),
(c) end-to-end training on the product's pipeline (cached epochs, until `fit` returns), the
    wait for the input iterator's teardown when `fit` ends, and the same with tf.data's autotuner on,
(d) batch inference images/s and batch-1 latency (a photo file to probabilities),
(e) cold start of `python inference.py photo.jpg`, (f) peak memory.
Each figure is the median of --repeats runs; (c)/(b) is the share of the limit reached. On shared cores the
step alone drifts between fits by more than the 5% at stake, so (c)/(b) is also measured interleaved: rounds
of --chunk steps on the batch in memory and --chunk steps from the pipeline, alternating (the figure the
augmentation's bar is judged by).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, add_data_options, data_folder, number, record, run  # first: quiets TensorFlow's start-up

# isort: split
import keras
import numpy as np
import tensorflow as tf

from defect_tf.bundle.metadata import BundleMetadata
from defect_tf.bundle.store import load_bundle, save_bundle
from defect_tf.data.augmentation import PRESETS, build_augmentation
from defect_tf.data.labels import parse_labels
from defect_tf.data.pipeline import PREFETCH_BATCHES, fixed_tuning, make_dataset, steps_per_epoch
from defect_tf.inference.predictor import Predictor
from defect_tf.models.classifier import build_classifier
from defect_tf.train.config import TrainConfig
from defect_tf.train.losses import MaskedFocalLoss


class Timeline(keras.callbacks.Callback):
    """When each epoch began and when training ended (Keras's view; `fit` may return later)."""

    def on_train_begin(self, logs=None):
        self.epoch_starts = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_starts.append(time.perf_counter())

    def on_train_end(self, logs=None):
        self.train_end = time.perf_counter()


def compiled_model(args, n_outputs: int, jit_compile) -> keras.Model:
    model = build_classifier(args.backbone, n_outputs, args.image_size, None)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=MaskedFocalLoss(TrainConfig.gamma),
                  jit_compile=jit_compile)
    return model


def fit_rate(model, dataset, steps: int, images: int, epochs: int) -> tuple[float, float]:
    """Images/s from the second epoch's start until `fit` returns (the first epoch holds tracing and,
    for files, the cache fill), and the seconds `fit` took to return after training ended (the wait
    for the input iterator's teardown)."""
    timeline = Timeline()
    model.fit(dataset, steps_per_epoch=steps, epochs=epochs, verbose=0, callbacks=[timeline])
    returned = time.perf_counter()
    return images * (epochs - 1) / (returned - timeline.epoch_starts[1]), returned - timeline.train_end


def interleaved_ratios(model, batch: tuple, pipeline: tf.data.Dataset, chunk: int, rounds: int) -> list[float]:
    """End-to-end speed over step-alone speed in `rounds` rounds of `chunk` steps of each, back to back, so both
    see the same machine (on shared cores the step alone drifts by more than 5% between separate fits). Each
    step-alone chunk starts after the pipeline has refilled its prefetch buffer, and each end-to-end chunk
    after that buffer is drained (both untimed), so neither chunk is charged the other's input work."""
    x, y = batch
    iterator = iter(pipeline)
    model.train_on_batch(*next(iterator))  # tracing, and the augmentation's first run
    ratios = []
    for _ in range(rounds):
        for _ in range(PREFETCH_BATCHES):
            model.train_on_batch(x, y)
        start = time.perf_counter()
        for _ in range(chunk):
            model.train_on_batch(x, y)
        alone = time.perf_counter() - start
        for _ in range(PREFETCH_BATCHES):
            next(iterator)
        start = time.perf_counter()
        for _ in range(chunk):
            model.train_on_batch(*next(iterator))
        ratios.append(alone / (time.perf_counter() - start))
    return ratios


def with_autotune(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """The same pipeline with tf.data's autotuner on (TensorFlow's default), for comparison."""
    options = tf.data.Options()
    options.autotune.enabled = True
    return dataset.with_options(options)


def peak_memory_mb(command: list[str]) -> tuple[float, float]:
    """Wall time and peak resident memory (VmHWM, polled) of a command run to completion.

    A child's ru_maxrss would be wrong here: a forked child starts with its parent's memory counted.
    """
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak_kb = 0
    while process.poll() is None:
        try:
            status = Path(f"/proc/{process.pid}/status").read_text()
            peak_kb = max(peak_kb, int(status.split("VmHWM:")[1].split()[0]))
        except (OSError, IndexError, ValueError):
            pass
        time.sleep(0.01)
    if process.returncode:
        raise RuntimeError(f"{command} failed with exit code {process.returncode}")
    return time.perf_counter() - start, peak_kb / 1024


def quartiles(values: list[float]) -> str:
    low, middle, high = statistics.quantiles(values, n=4)
    return f"{low:.3f} / {middle:.3f} / {high:.3f}"


def figure_table(figures: dict) -> str:
    """The Markdown table of one run's figures: medians, ratios to (b), and the worst repeat where a
    stall would hide behind the median."""
    settings, median, runs = figures["settings"], figures, figures["runs"]
    step = median["step_alone"]
    paired = [end / alone for end, alone in zip(runs["end_to_end"], runs["step_alone"])]
    rate = lambda key: f"{median[key]:.1f} (worst {min(runs[key]):.1f})"
    wait = lambda key: f"{median[key]:.1f} (worst {max(runs[key]):.1f})"
    rows = [
        "| figure | median (worst repeat) | ratio to (b) |", "|---|---:|---:|",
        f"| (a) input pipeline alone, first epoch (read, decode, cache), images/s | {median['pipeline_first']:.0f} | "
        f"{median['pipeline_first'] / step:.2f} |",
        f"| (a) input pipeline alone, cached epochs (shuffle, augment), images/s | {median['pipeline_cached']:.0f} | "
        f"{median['pipeline_cached'] / step:.2f} |",
        f"| (b) training step alone, one batch in memory, images/s | {median['step_alone']:.1f} | 1.00 |",
        f"| (c) end-to-end training, cached epochs until `fit` returns, images/s | {rate('end_to_end')} | "
        f"{median['end_to_end'] / step:.3f} |",
        "| (c)/(b) within each repeat (the two fits back to back) | "
        f"{', '.join(f'{ratio:.3f}' for ratio in paired)} | median {statistics.median(paired):.3f} |",
        f"| (c)/(b) interleaved: {len(figures['interleaved_ratios'])} rounds of {settings['chunk']} steps of each, "
        f"quartiles | {quartiles(figures['interleaved_ratios'])} | median **{figures['interleaved_ratio']:.3f}** |",
        f"| (c) wait for the input iterator's teardown when `fit` ends, s | {wait('teardown_seconds')} | |",
        f"| (c) the same with tf.data's autotuner on (TensorFlow's default), images/s | {rate('end_to_end_autotune')} "
        f"| {median['end_to_end_autotune'] / step:.3f} (worst {min(runs['end_to_end_autotune']) / step:.3f}) |",
        f"| (c) wait for the teardown with the autotuner on, s | {wait('teardown_seconds_autotune')} | |",
    ]
    if runs.get("step_alone_xla"):
        rows.append(f"| (b) with XLA (`jit_compile=True`), images/s | {median['step_alone_xla']:.1f} | "
                    f"{median['step_alone_xla'] / step:.2f} |")
    rows += [
        f"| (d) batch inference from files (`Predictor`, 256 photos), images/s | "
        f"{median['inference_batch_images_per_s']:.1f} | |",
        f"| (d) batch-1 latency, photo file to probabilities, ms | {median['inference_latency_ms']:.0f} | |",
        f"| (e) cold start of `python inference.py photo.jpg`, s | {median['cold_start_seconds']:.1f} | |",
        f"| (f) peak memory of this benchmark / of `inference.py`, MB | {median['peak_memory_mb']:.0f} / "
        f"{median['inference_cli_peak_memory_mb']:.0f} | |",
    ]
    return (f"`{settings['backbone']}` (random weights), {settings['image_size']} px, batch {settings['batch_size']}, "
            f"`{settings.get('augment', 'standard')}` augmentation, "
            f"{figures['images_per_epoch']} NEU images per epoch, {settings['epochs']} epochs per fit (first not "
            f"counted); medians of {settings['repeats']} repeats, and the worst repeat where a stall would hide "
            "behind the median.\n\n" + "\n".join(rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_options(parser, backbone="efficientnet_b0", image_size=128, batch_size=32)
    parser.add_argument("--images", type=int, default=640, help="NEU images per epoch")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per fit; the first is not counted")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--augment", choices=PRESETS, default=TrainConfig.augment, help="the augmentation preset")
    parser.add_argument("--rounds", type=int, default=12, help="rounds of the interleaved (c)/(b) measurement")
    parser.add_argument("--chunk", type=int, default=20, help="training steps of each kind per round")
    parser.add_argument("--xla", choices=["off", "compare"], default="compare",
                        help="compare: also time (b) with jit_compile=True")
    args = parser.parse_args(argv)
    folder = data_folder(args.data_root, "neu")
    table = parse_labels(folder / "labels.txt")
    chosen = np.random.default_rng(0).permutation(len(table.images))[:args.images]
    table = table.subset(np.sort(chosen))
    paths = [str(folder / "images" / name) for name in table.images]
    n, size, batch = len(paths), args.image_size, args.batch_size
    steps = steps_per_epoch(n, batch)
    images_per_epoch = steps * batch
    print(f"{args.backbone} at {size} px, batch {batch}, {n} NEU images ({steps} steps per epoch), "
          f"{args.repeats} repeats", flush=True)

    def training_pipeline(seed: int) -> tf.data.Dataset:
        """The product's training pipeline over the chosen images, augmented with the chosen preset."""
        return make_dataset(paths, table.values, size, batch, training=True,
                            augment=build_augmentation(preset=args.augment, seed=seed), seed=seed)

    runs = {key: [] for key in ("pipeline_first", "pipeline_cached", "step_alone", "end_to_end", "teardown_seconds",
                                "end_to_end_autotune", "teardown_seconds_autotune", "step_alone_xla")}
    for repeat in range(args.repeats):
        keras.utils.set_random_seed(repeat)
        iterator = iter(training_pipeline(repeat))
        for key in ("pipeline_first", "pipeline_cached"):
            start = time.perf_counter()
            for _ in range(steps):
                next(iterator)
            runs[key].append(images_per_epoch / (time.perf_counter() - start))

        model = compiled_model(args, len(table.attributes), jit_compile=False)
        x, y = next(iterator)
        del iterator
        in_memory = fixed_tuning(tf.data.Dataset.from_tensors((x, y)).repeat())  # no autotuner stall here either
        runs["step_alone"].append(fit_rate(model, in_memory, steps, images_per_epoch, args.epochs)[0])
        for suffix, wrap in (("", lambda dataset: dataset), ("_autotune", with_autotune)):
            fresh = wrap(training_pipeline(repeat))
            rate, teardown = fit_rate(model, fresh, steps, images_per_epoch, args.epochs)
            runs["end_to_end" + suffix].append(rate)
            runs["teardown_seconds" + suffix].append(teardown)
        if args.xla == "compare" and repeat == 0:
            xla_model = compiled_model(args, len(table.attributes), jit_compile=True)
            runs["step_alone_xla"].append(fit_rate(xla_model, in_memory, steps, images_per_epoch, 2)[0])
        print(f"repeat {repeat + 1}: " + ", ".join(f"{key} {values[-1]:.2f}" for key, values in runs.items()
                                                    if values), flush=True)

    # (c) again, interleaved: the bar's figure, robust to the machine's drift
    interleaved = interleaved_ratios(model, (x, y), training_pipeline(0), args.chunk, args.rounds)
    print("interleaved (c)/(b): " + ", ".join(f"{ratio:.3f}" for ratio in interleaved), flush=True)

    # (d) inference, through the product's own code paths, with the last model as a bundle
    work = Path(tempfile.mkdtemp(prefix="throughput_"))
    save_bundle(work, model, BundleMetadata(attributes=table.attributes, image_size=size,
                                            thresholds=[0.5] * len(table.attributes), backbone=args.backbone))
    predictor = Predictor(load_bundle(work))
    predictor.predict(paths[:batch])  # warm-up: tracing
    start = time.perf_counter()
    predictor.predict(paths[:256])
    batch_rate = 256 / (time.perf_counter() - start)
    latencies = []
    for path in paths[:20]:
        start = time.perf_counter()
        predictor.predict([path])
        latencies.append(time.perf_counter() - start)
    # (e) cold start of the command a user runs, (f) its peak memory
    cold, child_peaks = [], []
    for _ in range(args.repeats):
        seconds, peak = peak_memory_mb([sys.executable, str(ROOT / "inference.py"), paths[0], "--model", str(work)])
        cold.append(seconds)
        child_peaks.append(peak)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_child_mb = max(child_peaks)

    median = {key: statistics.median(values) for key, values in runs.items() if values}
    figures = {"settings": vars(args), "images_per_epoch": images_per_epoch, **median,
               "ratio_end_to_end_to_step": median["end_to_end"] / median["step_alone"],
               "ratio_pipeline_cached_to_step": median["pipeline_cached"] / median["step_alone"],
               "interleaved_ratios": interleaved, "interleaved_ratio": statistics.median(interleaved),
               "inference_batch_images_per_s": batch_rate, "inference_latency_ms": 1000 * statistics.median(latencies),
               "cold_start_seconds": statistics.median(cold), "peak_memory_mb": peak_mb,
               "inference_cli_peak_memory_mb": peak_child_mb, "runs": runs}
    markdown = figure_table(figures)
    print(markdown)
    preset = "" if args.augment == "standard" else f"_{args.augment}"
    record(f"throughput_{args.backbone}_{size}{preset}", f"Throughput: {args.backbone}, {size} px"
           + ("" if args.augment == "standard" else f", {args.augment} augmentation"), markdown, figures)
    print(f"(c)/(b) = {number(figures['ratio_end_to_end_to_step'])}; interleaved, median of {args.rounds} rounds: "
          f"{number(figures['interleaved_ratio'])}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
