"""The repository stands on its own: no tracked file points at documents or code outside it."""
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Spelled in pieces so that this file does not match itself.
OUTSIDE = re.compile("|".join(re.escape(p) for p in (
    "../" + "shared", "/work/" + "shared", "REFERENCE" + ".md", "DESIGN" + ".md")))


def _tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / name for name in out.decode().split("\0") if name]


def test_no_tracked_file_refers_outside_the_repository():
    hits = []
    for path in _tracked_files():
        if not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", errors="ignore")
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not hits, "references outside the repository:\n" + "\n".join(hits)


def test_the_docs_the_code_cites_exist():
    cited = set()
    for path in _tracked_files():
        if path.suffix in {".py", ".md", ".sh"} and path.is_file():
            cited |= set(re.findall(r"\bdocs/[\w./-]+\.md", path.read_text(errors="ignore")))
    assert cited, "the code cites no docs at all"
    missing = sorted(c for c in cited if not (ROOT / c).is_file())
    assert not missing, f"cited but absent: {missing}"
