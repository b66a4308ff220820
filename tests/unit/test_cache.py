import json

import pytest

from pytest_qrel.cache import QuantCache, cache_key
from pytest_qrel.errors import QrelCacheWarning


def _save(text):
    def save(directory):
        (directory / "payload.bin").write_text(text)

    return save


def test_key_changes_with_every_part():
    parts = {"base_weights": "abc", "backend": "hqq", "backend_version": "hqq=0.2.8", "bits": 4, "group_size": 64}
    key = cache_key(parts)
    assert key == cache_key(dict(reversed(list(parts.items()))))  # order does not matter
    for name, other in [("base_weights", "abd"), ("backend", "rtn"), ("backend_version", "hqq=0.2.9"),
                        ("bits", 3), ("group_size", 128)]:
        assert cache_key({**parts, name: other}) != key


def test_write_then_read(tmp_path):
    cache = QuantCache(tmp_path)
    with cache.lock("ab" * 32):
        cache.write("ab" * 32, _save("hello"), {"layers": ["x"]})
    entry = cache.read("ab" * 32)
    assert entry.meta == {"layers": ["x"]}
    assert (entry.directory / "payload.bin").read_text() == "hello"
    manifest = json.loads((entry.directory / "manifest.json").read_text())
    assert set(manifest["files"]) == {"payload.bin"}


def test_miss(tmp_path):
    assert QuantCache(tmp_path).read("cd" * 32) is None


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda d: (d / "payload.bin").write_text("hellO"), "checksum mismatch in payload.bin"),
        (lambda d: (d / "payload.bin").write_bytes(b"hel"), "checksum mismatch in payload.bin"),
        (lambda d: (d / "payload.bin").unlink(), "missing file payload.bin"),
        (lambda d: (d / "manifest.json").write_text("{"), "unreadable manifest"),
    ],
)
def test_damaged_entry_is_discarded_with_a_warning(tmp_path, damage, reason):
    cache = QuantCache(tmp_path)
    entry = cache.write("ef" * 32, _save("hello"), {})
    damage(entry.directory)
    with pytest.warns(QrelCacheWarning, match=reason):
        assert cache.read("ef" * 32) is None
    assert not entry.directory.exists()


def test_failed_write_leaves_nothing(tmp_path):
    cache = QuantCache(tmp_path)

    def broken(directory):
        (directory / "half.bin").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        cache.write("01" * 32, broken, {})
    assert cache.read("01" * 32) is None
    assert [p.name for p in (tmp_path / "01").iterdir()] == []  # no temp directory left behind
