"""From an anomaly map to a defect outline: threshold, morphological clean-up, connected regions with their boxes
and areas, and an overlay that draws the outline on the photo. NumPy, SciPy and OpenCV only (no TensorFlow)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np
from scipy import ndimage

CLEANUP_SHARE = 0.01  # the clean-up's structuring element: this share of the photo's shorter side (at least 3 px)
OUTLINE_COLOUR = (255, 40, 40)  # RGB


@dataclass(frozen=True)
class Region:
    """One connected defect region, in the photo's own pixels."""

    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (x1 and y1 exclusive)
    area: int  # pixels
    share: float  # of the photo's pixels
    peak: float  # the highest anomaly score inside it

    def box_text(self) -> str:
        """The box for people, first and last pixel of each side ("x 20-49, y 10-29"); JSON keeps the exclusive
        ends that slice the photo."""
        x0, y0, x1, y1 = self.box
        return f"x {x0}-{x1 - 1}, y {y0}-{y1 - 1}"

    def to_json(self) -> dict:
        return {**asdict(self), "box": list(self.box), "share": round(self.share, 6), "peak": round(self.peak, 6)}


def cleanup_size(shape: tuple[int, int]) -> int:
    """The side of the square structuring element for a photo of `shape` (odd, at least 3 px)."""
    side = max(3, round(min(shape) * CLEANUP_SHARE))
    return side + 1 - side % 2


def defect_mask(anomaly_map: np.ndarray, threshold: float) -> np.ndarray:
    """Pixels whose score reaches `threshold`, cleaned: an opening drops specks smaller than the structuring
    element, a closing joins pieces of one defect, holes are filled."""
    structure = np.ones((cleanup_size(anomaly_map.shape),) * 2, dtype=bool)
    mask = np.asarray(anomaly_map) >= threshold
    mask = ndimage.binary_opening(mask, structure)
    mask = ndimage.binary_closing(mask, structure, border_value=0)
    return ndimage.binary_fill_holes(mask)


def find_regions(mask: np.ndarray, anomaly_map: np.ndarray) -> list[Region]:
    """The connected regions of `mask` (8-connected), largest first."""
    labelled, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    regions = []
    for index, window in enumerate(ndimage.find_objects(labelled), start=1):
        inside = labelled[window] == index
        rows, cols = window
        regions.append(Region(box=(cols.start, rows.start, cols.stop, rows.stop), area=int(inside.sum()),
                              share=float(inside.sum() / mask.size),
                              peak=float(np.asarray(anomaly_map)[window][inside].max())))
    return sorted(regions, key=lambda region: -region.area)


def outline_overlay(photo: np.ndarray, mask: np.ndarray, regions: list[Region] | None = None) -> np.ndarray:
    """The photo (RGB uint8) with the mask's outline drawn over it, and each region's box."""
    overlay = np.ascontiguousarray(photo, dtype=np.uint8).copy()
    thickness = max(1, round(min(mask.shape) / 200))
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(overlay, contours, -1, OUTLINE_COLOUR, thickness)
    for region in regions or []:
        x0, y0, x1, y1 = region.box
        cv2.rectangle(overlay, (x0, y0), (x1 - 1, y1 - 1), (255, 200, 0), max(1, thickness // 2))
    return overlay
