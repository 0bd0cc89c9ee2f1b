"""IDX parsing, checksum verification and locating / downloading the dataset."""

import gzip
import http.server
import threading
from functools import partial

import numpy as np
import pytest

from src.core import data
from src.core.errors import DataError
from tests.conftest import write_dataset


def test_idx_round_trip():
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    labels = np.array([3, 7], dtype=np.uint8)
    np.testing.assert_array_equal(data.parse_idx(data.encode_idx(images)), images)
    np.testing.assert_array_equal(data.parse_idx(data.encode_idx(labels)), labels)
    assert data.encode_idx(labels)[:4] == bytes([0, 0, 8, 1])  # magic 0x00000801


@pytest.mark.parametrize("raw, message", [
    (b"\x00\x00\x0d\x01" + (1).to_bytes(4, "big") + b"\x00" * 4, "unsupported IDX magic"),
    (b"\x12\x34\x08\x01", "bad magic number"),
    (b"", "bad magic number"),
    (b"\x00\x00\x08\x03\x00\x00", "truncated IDX header"),
    (b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + b"\x01\x02", "has 10 bytes"),
])
def test_bad_idx_is_refused_with_the_name(raw, message):
    with pytest.raises(DataError, match=message) as caught:
        data.parse_idx(raw, "labels.idx")
    assert "labels.idx" in str(caught.value)


def test_load_verifies_and_parses(tmp_path, monkeypatch):
    checksums = write_dataset(tmp_path)
    monkeypatch.setenv("TUNELAB_CHECKSUMS", str(checksums))
    arrays = data.load(tmp_path)
    assert arrays["train_images"].shape == (600, 28, 28)
    assert arrays["test_labels"].shape == (200,)


def test_altered_file_is_refused_by_checksum(tmp_path, monkeypatch):
    checksums = write_dataset(tmp_path)
    monkeypatch.setenv("TUNELAB_CHECKSUMS", str(checksums))
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[-1] ^= 1  # one flipped bit in one label
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match="checksum") as caught:
        data.load(tmp_path)
    assert "train-labels-idx1-ubyte.gz" in str(caught.value)


def test_truncated_gzip_is_refused_with_the_name(tmp_path, monkeypatch):
    checksums = write_dataset(tmp_path)
    monkeypatch.setenv("TUNELAB_CHECKSUMS", str(checksums))
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="cannot decompress") as caught:
        data.load(tmp_path)
    assert "t10k-images-idx3-ubyte.gz" in str(caught.value)


def test_real_checksums_refuse_synthetic_data(tmp_path, monkeypatch):
    write_dataset(tmp_path)
    monkeypatch.delenv("TUNELAB_CHECKSUMS", raising=False)
    with pytest.raises(DataError, match="not Fashion-MNIST"):
        data.load(tmp_path)


def test_locate_prefers_the_env_var(tmp_path, monkeypatch):
    write_dataset(tmp_path / "mine")
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path / "mine"))
    assert data.locate(tmp_path / "raw") == tmp_path / "mine"
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path / "empty"))
    with pytest.raises(DataError, match="does not hold the four files"):
        data.locate(tmp_path / "raw")


@pytest.fixture
def mirror(tmp_path):
    """A local HTTP server on 127.0.0.1 serving a synthetic dataset (a stand-in for the mirror)."""
    served = tmp_path / "served"
    write_dataset(served)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", served / "checksums.json"
    server.shutdown()
    server.server_close()


def test_download_fetches_all_files_and_they_verify(tmp_path, monkeypatch, mirror):
    url, checksums = mirror
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setenv("TUNELAB_CHECKSUMS", str(checksums))
    raw = tmp_path / "raw"
    assert data.locate(raw, mirrors=("http://127.0.0.1:9/", url)) == raw  # first mirror is down
    assert sorted(p.name for p in raw.iterdir()) == sorted(f"{s}.gz" for s in data.FILES.values())
    assert data.load(raw)["train_labels"].shape == (600,)


def test_no_data_and_no_network_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "no-debian")
    with pytest.raises(DataError) as caught:
        data.locate(tmp_path / "raw", mirrors=("http://127.0.0.1:9/",))
    message = str(caught.value)
    for hint in ("apt-get install dataset-fashion-mnist", "FASHION_MNIST_DIR", "download"):
        assert hint in message
    assert not list((tmp_path / "raw").glob("*.part"))  # no partial download left behind
