"""Long loops report progress in a log as lines, and on a terminal as a bar."""

import io

from tqdm import tqdm

from defect_tf.progress_bar import LogLines, progress_bar


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_log_gets_a_line_every_interval_and_the_last_one():
    clock, log = Clock(), io.StringIO()
    for _ in LogLines(range(10), desc="scoring", unit="photo", file=log, every=4, clock=clock):
        clock.now += 1  # a photo a second
    assert log.getvalue().splitlines() == [
        "scoring:  40% 4/10 [00:04<00:06,  1.00photo/s]",
        "scoring:  80% 8/10 [00:08<00:02,  1.00photo/s]",
        "scoring: 100% 10/10 [00:10<00:00,  1.00photo/s]",
    ]


def test_counted_by_hand_resumed_and_empty_runs():
    clock, log = Clock(), io.StringIO()
    with LogLines(total=6, initial=2, desc="labelling", unit="photo", file=log, every=60, clock=clock) as bar:
        clock.now = 8
        bar.update(4)  # 4 photos in 8 s after a resume that found 2 done
    assert log.getvalue() == "labelling: 100% 6/6 [00:08<00:00,  2.00s/photo]\n"
    silent = io.StringIO()
    with LogLines(total=3, file=silent):
        pass  # nothing counted: no line
    assert silent.getvalue() == ""


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_gets_tqdms_bar_and_a_redirected_stream_lines():
    terminal_bar = progress_bar(range(3), desc="coreset", file=Terminal(), leave=False)
    assert isinstance(terminal_bar, tqdm)
    terminal_bar.close()
    assert isinstance(progress_bar(range(3), file=io.StringIO(), leave=False), LogLines)
