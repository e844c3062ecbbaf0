"""Output planning: outputs are never inputs or symbolic links, and a set of outputs appears whole or not at all."""
from __future__ import annotations

import os

import pytest

from iqt.io_utils import WriteError, atomic_paths, check_not_inputs


def test_an_output_that_is_an_input_by_any_path_is_refused(tmp_path):
    scan = tmp_path / "scan.nii.gz"
    scan.write_bytes(b"scan")
    os.link(scan, tmp_path / "hard.nii.gz")
    check_not_inputs({"output": tmp_path / "new.nii.gz"}, [scan, None])
    for same in (scan, tmp_path / "sub" / ".." / "scan.nii.gz", tmp_path / "hard.nii.gz"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(WriteError, match="is the input"):
            check_not_inputs({"output": same}, [scan])


def test_an_output_that_is_a_symbolic_link_is_refused_even_dangling(tmp_path):
    (tmp_path / "link.nii.gz").symlink_to(tmp_path / "nowhere" / "x.nii.gz")
    with pytest.raises(WriteError, match="symbolic link"):
        check_not_inputs({"output": tmp_path / "link.nii.gz"}, [])
    assert not (tmp_path / "nowhere").exists()


def test_a_set_of_outputs_appears_whole_or_not_at_all(tmp_path):
    paths = [tmp_path / f"{name}.nii.gz" for name in ("t1", "gm", "wm")]
    with pytest.raises(OSError):
        with atomic_paths(paths) as temporary:
            temporary[0].write_bytes(b"one")
            temporary[1].write_bytes(b"two")
            raise OSError(28, "No space left on device")
    assert list(tmp_path.iterdir()) == []
    with atomic_paths(paths) as temporary:
        for tmp, text in zip(temporary, (b"1", b"2", b"3")):
            tmp.write_bytes(text)
    assert [p.read_bytes() for p in paths] == [b"1", b"2", b"3"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gm.nii.gz", "t1.nii.gz", "wm.nii.gz"]
