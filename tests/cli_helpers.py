"""The one-line error contract, as the command-line tests check it."""
from __future__ import annotations

import subprocess


def assert_user_error(result: subprocess.CompletedProcess, *words: str) -> None:
    """Exit status 2 and exactly one stderr line, `error: ...`, holding every one of `words`."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
