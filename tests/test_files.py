"""vaevar/files.py: files written whole or not at all."""

import json
import os

import pytest

from vaevar import files


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):

    path = tmp_path / "result.json"
    files.save_json(path, {"fid": 1.0})
    with pytest.raises(TypeError):
        files.save_json(path, {"fid": object()})
    assert json.load(open(path)) == {"fid": 1.0}
    assert os.listdir(tmp_path) == ["result.json"]
