"""A process's private temporary folder (the web page's): its own, gone when it ends, and gone at the next start
when the process was killed; no folder the tool did not make, or of a process still running, is touched."""

import os
import signal
import stat
import subprocess
import sys

import pytest

from defect_tf.io.private_folder import OWNER_FILE, private_folder, remove_abandoned

PREFIX = "defect_tf-web-"
NO_SUCH_PROCESS = 2**22 + 1  # above Linux's largest process id (PID_MAX_LIMIT)
HOLD_A_FOLDER = ("import sys, time; from pathlib import Path; from defect_tf.io.private_folder import private_folder\n"
                 "folder = private_folder(sys.argv[1], Path(sys.argv[2])); (folder / 'upload.png').write_bytes(b'x')\n"
                 "print(folder, flush=True); time.sleep(float(sys.argv[3]))")


def hold_a_folder(parent, seconds):
    """A process that makes its private folder in `parent`, puts a file in it and sleeps: (process, folder)."""
    process = subprocess.Popen([sys.executable, "-c", HOLD_A_FOLDER, PREFIX, str(parent), str(seconds)],
                               stdout=subprocess.PIPE, text=True)
    return process, process.stdout.readline().strip()


@pytest.mark.integration
def test_the_folder_is_private_names_its_process_and_goes_when_the_process_ends(tmp_path):
    process, folder = hold_a_folder(tmp_path, 0)
    assert process.wait(timeout=30) == 0
    assert not os.path.exists(folder) and list(tmp_path.iterdir()) == []

    folder = private_folder(PREFIX, tmp_path)
    assert folder.parent == tmp_path and folder.name.startswith(PREFIX)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert (folder / OWNER_FILE).read_text() == str(os.getpid())


@pytest.mark.integration
def test_a_killed_processs_folder_is_removed_when_the_next_one_starts(tmp_path):
    process, killed = hold_a_folder(tmp_path, 60)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert os.path.isfile(os.path.join(killed, "upload.png"))  # a killed process cannot remove its own

    folder = private_folder(PREFIX, tmp_path)
    assert not os.path.exists(killed) and folder.is_dir()


def test_only_folders_this_tool_made_for_a_process_that_has_ended_are_removed(tmp_path):
    def folder(name, owner=None):
        made = tmp_path / name
        made.mkdir()
        if owner is not None:
            (made / OWNER_FILE).write_text(str(owner))
        return made

    live = folder(f"{PREFIX}live", os.getppid())  # the process that started this one still runs
    mine = folder(f"{PREFIX}mine", os.getpid())
    foreign = folder(f"{PREFIX}someone-else")  # no owner file: not this tool's to judge
    garbled = folder(f"{PREFIX}garbled", "not a number")
    other = folder("another-tool-abc", NO_SUCH_PROCESS)  # another prefix, though its process has ended
    abandoned = folder(f"{PREFIX}abandoned", NO_SUCH_PROCESS)
    (abandoned / "upload.png").write_bytes(b"x")

    assert remove_abandoned(PREFIX, tmp_path) == [abandoned]
    assert sorted(tmp_path.iterdir()) == sorted([live, mine, foreign, garbled, other])
