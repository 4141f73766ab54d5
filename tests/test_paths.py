"""Output and input path checks made before a command's work."""

import os

import pytest

from dgnet_edge.errors import InputPathError, OutputPathError
from dgnet_edge.paths import prepare_output_dir, prepare_output_file, require_dir, require_file


def test_output_dir_is_created(tmp_path):
    out = prepare_output_dir(tmp_path / "a" / "b")
    assert out.is_dir()


def test_output_dir_under_a_file_names_the_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputPathError, match=r"has a file in its path: .*f\b"):
        prepare_output_dir(tmp_path / "f" / "exp")
    with pytest.raises(OutputPathError, match="is a file, not a folder"):
        prepare_output_dir(tmp_path / "f")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_output_dir_not_writable(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputPathError, match="cannot be"):
            prepare_output_dir(ro / "out")
    finally:
        ro.chmod(0o700)


def test_output_file_checks(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(OutputPathError, match="is a folder"):
        prepare_output_file(tmp_path / "d")
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputPathError, match=r"out.json has a file in its path: .*f, not a folder"):
        prepare_output_file(tmp_path / "f" / "out.json")
    assert prepare_output_file(tmp_path / "new" / "out.json").parent.is_dir()


def test_require_dir_and_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputPathError, match="does not exist"):
        require_dir(tmp_path / "nope")
    with pytest.raises(InputPathError, match="is a file, not a folder"):
        require_dir(tmp_path / "f")
    with pytest.raises(InputPathError, match="is a folder, not a file"):
        require_file(tmp_path)
    assert require_file(tmp_path / "f").is_file()
