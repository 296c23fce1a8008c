import os
import stat

import pytest

from dhvae_monai.utils.atomic import atomic_path


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_file_gets_the_umask_permissions_not_mkstemp_private_ones(tmp_path, umask_022):
    target = tmp_path / "results" / "table.md"
    with atomic_path(target) as temporary:
        temporary.write_text("| a |\n")
    assert target.read_text() == "| a |\n"
    assert _mode(target) == 0o644


def test_a_replaced_file_keeps_its_permissions(tmp_path, umask_022):
    target = tmp_path / "model.pt"
    target.write_text("old")
    os.chmod(target, 0o640)
    with atomic_path(target) as temporary:
        temporary.write_text("new")
    assert target.read_text() == "new"
    assert _mode(target) == 0o640


def test_a_failed_write_leaves_the_old_file_and_no_debris(tmp_path):
    target = tmp_path / "preview.png"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text("half")
            raise RuntimeError("writer failed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["preview.png"]
