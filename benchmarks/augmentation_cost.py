"""What each augmentation layer costs per batch, on one core: where the augmentation's share of the CPU goes.

    python benchmarks/augmentation_cost.py [--image-size 128] [--batch-size 32] [--threads 1]

Each layer of the heavy preset (which holds the standard preset's two) and each whole preset runs in a
`tf.function` on a batch of random images, `--calls` times after one call for tracing; the median is shown.
On a CPU the augmentation shares the cores with the training step, so these milliseconds are what
end-to-end training loses (see throughput.py for the loss itself). Needs no data.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from common import record, run  # first: quiets TensorFlow's start-up

# isort: split
import numpy as np
import tensorflow as tf

from defect_tf.data.augmentation import HEAVY_SHARE, PRESETS, build_augmentation


def milliseconds(function, images: tf.Tensor, calls: int) -> float:
    """Median wall time of one call of `function` on `images`, traced first."""
    compiled = tf.function(function)
    compiled(images)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        compiled(images).numpy()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow's intra- and inter-op threads")
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args(argv)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    shape = (args.batch_size, args.image_size, args.image_size, 3)
    images = tf.constant(np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32))

    costs = {}
    timed = [(type(layer).__name__, layer) for layer in build_augmentation(preset="heavy", seed=0).layers]
    timed += [(f"{preset} preset", build_augmentation(preset=preset, seed=0)) for preset in PRESETS]
    for name, transform in timed:
        costs[name] = milliseconds(lambda x, transform=transform: transform(x, training=True), images, args.calls)
        print(f"{name}: {costs[name]:.1f} ms", flush=True)

    rows = ["| layer or preset | ms per batch |", "|---|---:|"]
    rows += [f"| {name} | {ms:.1f} |" for name, ms in costs.items()]
    markdown = (f"A batch of {args.batch_size} random images at {args.image_size} px, {args.threads} thread(s); median "
                f"of {args.calls} calls. The heavy preset's own layers change {HEAVY_SHARE:.0%} of the images each.\n\n"
                + "\n".join(rows))
    print(markdown)
    record(f"augmentation_cost_{args.image_size}", f"Augmentation cost per layer, {args.image_size} px", markdown,
           {"settings": vars(args), "milliseconds": costs})
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
