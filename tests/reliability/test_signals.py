"""Signals and locks. A signal always stops a command: even when its exception is raised, and
dropped, inside a `__del__` (as a runtime's garbage-collection callback does), the command exits
143 / 130 with no output written and no traceback. A broken lock file is one clear error."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMAND = """
import os, signal, sys
from iqt import cli
from iqt.io_utils import atomic_write_text

class Runtime:
    def __del__(self):   # the signal arrives while Python runs a finaliser
        os.kill(os.getpid(), signal.{name})
        for _ in range(1000):   # the handler runs here and its exception is dropped
            pass

def main(argv):
    Runtime()
    atomic_write_text(sys.argv[1], "enhanced")   # must not be put in place

cli.run(main, [sys.argv[0]])
"""


@pytest.mark.parametrize("name, status, word", [("SIGTERM", 128 + signal.SIGTERM, "terminated"),
                                                ("SIGINT", 130, "interrupted")])
def test_a_signal_dropped_in_a_finaliser_still_stops_the_command(tmp_path, name, status, word):
    out = tmp_path / "out.txt"
    # A background job starts with SIGINT ignored, which Python (and the command) then keeps: undo that.
    result = subprocess.run([sys.executable, "-c", COMMAND.format(name=name), str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert result.returncode == status, result.stderr
    assert result.stderr.strip() == word
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_lock_path_taken_by_a_folder_is_a_user_error_naming_it(tmp_path):
    from iqt.errors import UserError
    from iqt.run_guard import workdir_lock
    (tmp_path / ".lock.0").mkdir()
    with pytest.raises(UserError, match=r"lock file .*\.lock\.0"):
        with workdir_lock(tmp_path):
            pass
