"""Where decoded training images are kept between epochs, so a second epoch reads them instead of the image files:
in memory while the decoded set fits a budget of the machine's free memory, otherwise in a tf.data cache file in
the run's own output folder (removed when the run ends). Chosen before any image is decoded, said in one line,
overridable with --cache. The disk is checked for room first."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from defect_tf.errors import DefectTFError
from defect_tf.io.untrusted import describe_size

CACHE_CHOICES = ("auto", "memory", "disk")
CACHE_DIR = "cache"  # in the output folder: the disk cache's files, removed when the run ends
MEMORY_SHARE = 0.5  # decoded images may take at most this share of the machine's free memory
DISK_MARGIN = 1.1  # a disk cache needs this many times its size free (the index, the file system's own blocks)
DISK_RESERVE = 1 << 30  # ... and this much left over after it, so the run's bundle and plots still fit
SHUFFLE_BUDGET = 256 << 20  # bytes of decoded images a shuffle buffer may hold when the set is cached on disk


@dataclass(frozen=True)
class CachePlan:
    kind: str  # "memory", "disk" or "shards" (none: read from prepared shards every epoch)
    directory: Path | None  # disk: the folder of the cache files
    decoded_bytes: int  # the decoded training and validation images, as uint8
    line: str  # what the run says about it

    def shuffle_buffer(self, images: int, image_size: int) -> int:
        """How many images a shuffle buffer holds: all of them when they are in memory anyway; on disk, as many as
        SHUFFLE_BUDGET holds (memory stays flat however many images there are)."""
        if self.kind == "memory":
            return max(1, images)
        return max(1, min(images, SHUFFLE_BUDGET // decoded_size(1, image_size)))

    def file(self, name: str) -> str:
        """The cache file for one stream of images ("" in memory): tf.data's `cache(filename)`."""
        return "" if self.directory is None else str(self.directory / name)


def decoded_size(images: int, image_size: int) -> int:
    """Bytes of `images` decoded at `image_size` squared, RGB uint8."""
    return images * image_size * image_size * 3


def free_memory() -> int | None:
    """The memory the machine can give without swapping (Linux's MemAvailable; else its physical memory)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def plan_cache(choice: str, images: int, image_size: int, output: Path, memory: int | None = None,
               disk_free: int | None = None, from_shards: bool = False) -> CachePlan:
    """The cache for `images` decoded at `image_size`: `choice` auto, memory or disk. `memory` and `disk_free`
    (bytes) default to this machine's free memory and the free space of `output`'s file system. Images read
    `from_shards` (data/shards.py) are on disk already, decoded: where a disk cache would be chosen, they are read
    from the shards every epoch instead ("shards")."""
    needed = decoded_size(images, image_size)
    memory = free_memory() if memory is None else memory
    budget = None if memory is None else int(MEMORY_SHARE * memory)
    fits = budget is None or needed <= budget
    what = f"{images:,} decoded images ({describe_size(needed)})"
    if choice == "memory" or (choice == "auto" and fits):
        if not fits:
            raise DefectTFError(f"--cache memory: {what} need more than half of this machine's free memory "
                                f"({describe_size(memory)}); use --cache disk (or auto), or a smaller --image-size")
        told = "" if budget is None else f", within half the free memory ({describe_size(budget)})"
        hint = "read them from the shards every epoch" if from_shards else "keep them on disk"
        return CachePlan("memory", None, needed, f"cache: {what} in memory{told}; --cache disk to {hint}")
    why = "--cache disk" if choice == "disk" else f"more than half the free memory ({describe_size(budget)})"
    if from_shards:
        return CachePlan("shards", None, needed, f"cache: none; {what} read from the shards every epoch ({why})")
    directory = output / CACHE_DIR
    free = shutil.disk_usage(output).free if disk_free is None else disk_free
    if free < needed * DISK_MARGIN + DISK_RESERVE:
        wanted = describe_size(int(needed * DISK_MARGIN) + DISK_RESERVE)
        raise DefectTFError(f"the disk cache of {what} needs {wanted} free "
                            f"in {output}, which has {describe_size(free)}; free some space, train with a smaller "
                            "--image-size, or use --output on a larger disk")
    return CachePlan("disk", directory, needed,
                     f"cache: {what} on disk in {directory} ({why}; removed when the run ends)")


def start_cache(plan: CachePlan) -> None:
    """An empty folder for a disk cache (a killed run's files removed: tf.data refuses a cache it finds locked)."""
    remove_cache(plan)
    if plan.directory is not None:
        plan.directory.mkdir(parents=True)


def remove_cache(plan: CachePlan | None) -> None:
    """Remove a disk cache's folder (it is the run's own: the output folder was claimed)."""
    if plan is not None and plan.directory is not None:
        shutil.rmtree(plan.directory, ignore_errors=True)
