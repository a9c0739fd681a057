"""Deterministic synthetic surface photos with four co-occurring defects, for a demo that runs offline.

Each image is a brushed-metal texture with any of: a bright straight `scratch`, a shaded round `dent`,
a dark jagged `crack` and a rust-coloured `stain`. About 20% of label cells are NA, like a real
inspection log, and every defect also gets a mask of where it is (for checking explanations).
Run `python -m defect_tf.data.demo` to write `images/`, `masks/` and `labels.txt`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from defect_tf.apps.cli import Parser, folder_to_write, number_in, run
from defect_tf.data.labels import NA, LabelTable, format_labels
from defect_tf.io import output_folder
from defect_tf.io.files import write_text

ATTRIBUTES = ("scratch", "dent", "crack", "stain")
DEMO_IMAGES = 1200
DEMO_FILES = ("images", "masks", "labels.txt")  # what the generator writes into its folder
DEFECT_PROBABILITY = {"scratch": 0.4, "dent": 0.35, "crack": 0.35, "stain": 0.4}


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Noise in [-1, 1] that varies over about `cells` blobs per side."""
    coarse = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Brushed metal: a tinted grey with slow shading, streaks along one direction and grain."""
    base = rng.uniform(100, 170)
    tint = rng.uniform(-8, 8, 3)
    shading = 18 * _smooth_noise(rng, size, 3)
    streaks = rng.normal(0, 1, (size, size)).astype(np.float32)
    streaks = cv2.GaussianBlur(streaks, (0, 0), sigmaX=size / 6, sigmaY=0.6) * 40
    if rng.random() < 0.5:
        streaks = streaks.T
    grain = rng.normal(0, 4, (size, size)).astype(np.float32)
    gray = base + shading + streaks + grain
    return gray[..., None] + tint[None, None, :]


def _scratch(rng, size, image, mask):
    """A thin, bright, nearly straight line across a good part of the surface."""
    length = rng.uniform(0.45, 0.8) * size
    angle = rng.uniform(0, np.pi)
    center = rng.uniform(0.3, 0.7, 2) * size
    offset = np.array([np.cos(angle), np.sin(angle)]) * length / 2
    start, end = (center - offset).astype(int), (center + offset).astype(int)
    layer = np.zeros(image.shape[:2], np.float32)
    cv2.line(layer, tuple(map(int, start)), tuple(map(int, end)), 1.0, thickness=max(1, size // 64),
             lineType=cv2.LINE_AA)
    image += rng.uniform(55, 80) * layer[..., None]
    cv2.line(mask, tuple(map(int, start)), tuple(map(int, end)), 255, thickness=max(3, size // 20))


def _dent(rng, size, image, mask):
    """A round depression: a shaded bowl (dark on the side away from the light) inside a crisp rim."""
    radius = rng.uniform(0.08, 0.12) * size
    center = rng.uniform(0.2, 0.8, 2) * size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = (xx - center[0]) / radius, (yy - center[1]) / radius
    distance = np.sqrt(dx**2 + dy**2)
    bowl = np.clip(1 - distance**2, 0, 1)
    light = rng.uniform(0, 2 * np.pi)
    slope = dx * np.cos(light) + dy * np.sin(light)
    rim = np.exp(-(((distance - 1) / 0.15) ** 2))
    image += (70 * slope * np.sqrt(bowl) - 35 * bowl - 45 * slope * rim)[..., None]
    cv2.circle(mask, tuple(map(int, center)), int(radius * 1.2), 255, thickness=-1)


def _crack(rng, size, image, mask):
    """A dark, jagged line that wanders like a fracture, sometimes with a branch."""
    def walk(start, heading, steps):
        points = [start]
        for _ in range(steps):
            heading += rng.normal(0, 0.6)
            points.append(points[-1] + rng.uniform(0.03, 0.06) * size * np.array([np.cos(heading), np.sin(heading)]))
        return np.clip(np.array(points), 0, size - 1).astype(np.int32)

    start = rng.uniform(0.25, 0.75, 2) * size
    paths = [walk(start, rng.uniform(0, 2 * np.pi), int(rng.integers(8, 13)))]
    if rng.random() < 0.5:
        paths.append(walk(paths[0][len(paths[0]) // 2].astype(float), rng.uniform(0, 2 * np.pi), 5))
    layer = np.zeros(image.shape[:2], np.float32)
    cv2.polylines(layer, paths, False, 1.0, thickness=max(1, size // 64), lineType=cv2.LINE_AA)
    image -= rng.uniform(60, 85) * layer[..., None]
    cv2.polylines(mask, paths, False, 255, thickness=max(3, size // 20))


def _stain(rng, size, image, mask):
    """A soft, irregular rust-brown blotch."""
    layer = np.zeros(image.shape[:2], np.float32)
    center = rng.uniform(0.25, 0.75, 2) * size
    for _ in range(int(rng.integers(3, 6))):
        blob_center = center + rng.normal(0, 0.06 * size, 2)
        axes = rng.uniform(0.05, 0.12, 2) * size
        cv2.ellipse(layer, tuple(map(int, blob_center)), tuple(map(int, axes)), rng.uniform(0, 180), 0, 360, 1.0, -1)
    layer = cv2.GaussianBlur(layer, (0, 0), sigmaX=size / 40)
    alpha = rng.uniform(0.45, 0.7) * layer[..., None]
    rust = np.array([40, 70, 140], np.float32) * rng.uniform(0.8, 1.1)  # BGR, as OpenCV writes it
    image[:] = image * (1 - alpha) + rust * alpha
    mask[layer > 0.3] = 255


_DRAW = {"scratch": _scratch, "dent": _dent, "crack": _crack, "stain": _stain}


def _draws_defects(rng: np.random.Generator) -> dict[str, bool]:
    """Which defects one image carries; dents and cracks tend to come together, as impacts do."""
    present = {name: bool(rng.random() < probability) for name, probability in DEFECT_PROBABILITY.items()}
    if present["dent"] and rng.random() < 0.4:
        present["crack"] = True
    return present


def render_sample(seed: int, size: int = 128) -> tuple[np.ndarray, dict[str, bool], dict[str, np.ndarray]]:
    """One synthetic photo (BGR uint8), which defects it shows, and a 0/255 mask per shown defect."""
    rng = np.random.default_rng(seed)
    image = _background(rng, size)
    present = _draws_defects(rng)
    masks = {}
    for name in ATTRIBUTES:
        if present[name]:
            masks[name] = np.zeros((size, size), np.uint8)
            _DRAW[name](rng, size, image, masks[name])
    return np.clip(image, 0, 255).astype(np.uint8), present, masks


def generate_demo(root: str | Path = ".", n_images: int = DEMO_IMAGES, size: int = 128, seed: int = 0,
                  na_fraction: float = 0.2) -> LabelTable:
    """Write `images/`, `masks/` and `labels.txt` under `root`; the same arguments give the same bytes.

    They are claimed in `root`'s output-folder manifest first: a `root` holding an `images/`, `masks/` or
    `labels.txt` this tool did not write is refused (one line), so a user's own files are never overwritten.
    """
    root = output_folder.claim(root, DEMO_FILES, "the demo folder")
    (root / "images").mkdir(exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    na_rng = np.random.default_rng([seed, 1])
    names, rows = [], []
    for index in range(n_images):
        name = f"surface_{index:04d}.png"
        image, present, masks = render_sample(seed * 1_000_003 + index, size)
        cv2.imwrite(str(root / "images" / name), image)
        for attribute, mask in masks.items():
            cv2.imwrite(str(root / "masks" / f"{Path(name).stem}_{attribute}.png"), mask)
        row = np.array([float(present[attribute]) for attribute in ATTRIBUTES], np.float32)
        row[na_rng.random(len(ATTRIBUTES)) < na_fraction] = NA
        names.append(name)
        rows.append(row)
    table = LabelTable(list(ATTRIBUTES), names, np.stack(rows))
    write_text(root / "labels.txt", format_labels(table))
    return table


def mask_path(root: str | Path, image: str, attribute: str) -> Path:
    """Where `generate_demo` put the mask of one defect of one image."""
    return Path(root) / "masks" / f"{Path(image).stem}_{attribute}.png"


def main(argv: list[str] | None = None) -> int:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", metavar="DIR", default=".", type=folder_to_write,
                        help="folder to write images/, masks/ and labels.txt into")
    parser.add_argument("--images", type=number_in(int, 1, 1_000_000), default=DEMO_IMAGES, help="number of images")
    parser.add_argument("--size", type=number_in(int, 16, 4096), default=128, help="image side in pixels")
    parser.add_argument("--seed", type=number_in(int, 0, 2**32 - 1), default=0)
    args = parser.parse_args(argv)
    table = generate_demo(args.root, args.images, args.size, args.seed)
    root = Path(args.root)
    print(f"wrote {len(table.images)} demo images to {root / 'images'} and labels to {root / 'labels.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
