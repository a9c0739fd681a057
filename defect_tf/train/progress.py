"""Where a training run is, so that an interruption (Ctrl-C, SIGTERM) says truthfully what is safe on disk and what
to run next: nothing to resume, resume from the last epoch, or a complete bundle whose test score was cut short."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from defect_tf.errors import DefectTFError
from defect_tf.io.untrusted import read_text
from defect_tf.limits import MAX_JSON_FILE_BYTES
from defect_tf.train.checkpoints import CHECKPOINT_DIR, STATE_FILE

STAGES = ("preparing", "training", "saving", "scoring", "filling", "done")  # filling: between --fill-na rounds


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back for the block (a bundle's save and the record that it was saved), then act on
    them: an interruption can then only land before the bundle is replaced or after that is known."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = {number: signal.signal(number, lambda received, frame: caught.append(received))
                for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if caught:
        raise KeyboardInterrupt


@dataclass
class RunProgress:
    """The stage a run has reached; the trainer moves it on, the command reads it when interrupted."""

    stage: str = "preparing"  # one of STAGES
    bundle: Path | None = None  # the saved bundle, once it is saved
    round_scores: list[float] = field(default_factory=list)  # --fill-na: each round's validation mean AP

    def start_round(self) -> None:
        """A --fill-na round starts a run again: nothing of it is saved yet."""
        self.stage, self.bundle = "preparing", None

    def interrupted(self, output: str | Path) -> str:
        """The line a user reads after interrupting the run writing into `output`."""
        epoch = _saved_epoch(Path(output))
        resume = f"python train.py --resume --output {output}"
        if self.bundle is not None and self.stage == "filling":
            return (f"interrupted while filling in NA labels for another round: the bundle in {self.bundle} is "
                    "complete and scored, and the rounds left were not trained; run the same command again to "
                    "train every round")
        if self.bundle is not None:
            return (f"interrupted after the model was saved: the bundle in {self.bundle} is complete; only the "
                    f"test-split evaluation was cut short. Score it with: python evaluate.py --model {output}")
        if epoch is not None and self.stage == "saving":
            return (f"interrupted while calibrating the thresholds and saving the model; training had finished and "
                    f"its last epoch ({epoch}) is saved, the previous bundle is untouched. Finish with: {resume}")
        if epoch is not None:
            return f"interrupted; the last completed epoch ({epoch}) is saved. Continue from it with: {resume}"
        if self.stage == "preparing":
            return ("interrupted while preparing the run (checking the images, building the model): nothing was "
                    "trained and nothing replaced; run the same command again to start over")
        return ("interrupted before the first epoch finished: there is nothing to resume (the previous bundle, if "
                "any, is untouched); run the same command again to start over")


def _saved_epoch(output: Path) -> int | None:
    """The last completed epoch of the checkpoint in `output`, or None without a readable one."""
    try:
        return int(json.loads(read_text(output / CHECKPOINT_DIR / STATE_FILE, MAX_JSON_FILE_BYTES))["epoch"])
    except (DefectTFError, ValueError, KeyError, TypeError):
        return None
