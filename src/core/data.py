"""Fashion-MNIST: find or fetch the four IDX files, verify them, parse them.

Where the data comes from, in order:
1. ``$FASHION_MNIST_DIR`` (a folder holding the four ``*-ubyte.gz`` files, or uncompressed ones);
2. ``/usr/share/datasets/fashion-mnist`` (Debian: ``apt-get install dataset-fashion-mnist``);
3. ``data/raw/`` (a previous download);
4. a download from the canonical source into ``data/raw/``.

Whatever the source, the *decompressed* bytes must match known SHA-256 sums (Debian recompresses
the archives, so the archives' own MD5s differ; the content does not). ``$TUNELAB_CHECKSUMS`` may
name a JSON file of other sums: the tests use it for synthetic data.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from src.core.errors import DataError

FILES = {  # role -> file stem, as published
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
SHA256 = {  # of the decompressed files; same values as torchvision's and the publisher's archives
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
# $FASHION_MNIST_MIRRORS (space-separated URLs of folders) replaces these, e.g. with a local mirror.
MIRRORS = tuple(os.environ.get("FASHION_MNIST_MIRRORS", "").split()) or (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
# Where Debian's dataset-fashion-mnist installs the files ($TUNELAB_DEBIAN_DIR moves it for tests).
DEBIAN_DIR = Path(os.environ.get("TUNELAB_DEBIAN_DIR", "/usr/share/datasets/fashion-mnist"))
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

_IDX_DTYPES = {0x08: np.uint8}  # IDX type code -> dtype; Fashion-MNIST uses unsigned bytes only


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse an IDX file (magic 0x0000TTDD: type TT, DD dimensions, big-endian sizes)."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{name}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    type_code, ndim = raw[2], raw[3]
    if type_code not in _IDX_DTYPES or ndim == 0:
        raise DataError(f"{name}: unsupported IDX magic number {raw[:4].hex()}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{name}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(f"{name}: IDX says shape {shape} ({expected} bytes) but the file has "
                        f"{len(raw)} bytes")
    return np.frombuffer(raw, dtype=_IDX_DTYPES[type_code], offset=header).reshape(shape)


def encode_idx(array: np.ndarray) -> bytes:
    """The inverse of :func:`parse_idx` for uint8 arrays (used to make synthetic datasets)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    sizes = b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return bytes([0, 0, 0x08, array.ndim]) + sizes + array.tobytes()


def sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def expected_checksums() -> dict[str, str]:
    override = os.environ.get("TUNELAB_CHECKSUMS")
    if not override:
        return SHA256
    try:
        sums = json.loads(Path(override).read_text())
    except (OSError, ValueError) as error:
        raise DataError(f"TUNELAB_CHECKSUMS={override}: cannot read a JSON of sums ({error})") from None
    missing = set(SHA256) - set(sums)
    if missing:
        raise DataError(f"TUNELAB_CHECKSUMS={override} lacks sums for {sorted(missing)}")
    return sums


def _file_in(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def has_dataset(folder: Path) -> bool:
    return all(_file_in(folder, stem) for stem in FILES.values())


def read_verified(path: Path, stem: str, checksums: dict[str, str]) -> bytes:
    """Read (and decompress) one file and check its content against the expected sum."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (EOFError, OSError, zlib.error) as error:
        raise DataError(f"{path}: cannot decompress ({error}); the file is truncated or "
                        f"corrupt: delete it and fetch it again") from None
    digest = sha256(raw)
    if digest != checksums[stem]:
        raise DataError(f"{path}: content checksum {digest[:16]}… does not match the expected "
                        f"{checksums[stem][:16]}…; the file is altered or not Fashion-MNIST")
    return raw


def download(dest: Path, mirrors=MIRRORS, timeout: float = 30.0) -> None:
    """Fetch the four archives into ``dest`` (atomically: a partial download is never kept)."""
    dest.mkdir(parents=True, exist_ok=True)
    for stem in FILES.values():
        target = dest / f"{stem}.gz"
        if target.is_file():
            continue
        errors = []
        for mirror in mirrors:
            partial = target.with_suffix(".gz.part")
            try:
                with urllib.request.urlopen(mirror + target.name, timeout=timeout) as response, \
                        open(partial, "wb") as out:
                    shutil.copyfileobj(response, out)
                partial.replace(target)
                break
            except OSError as error:  # URLError, HTTPError, timeouts are all OSErrors
                partial.unlink(missing_ok=True)
                errors.append(f"{mirror}: {error}")
        else:
            raise DataError(
                f"Fashion-MNIST not found and the download of {target.name} failed "
                f"({'; '.join(errors)}). Get the data one of these ways: "
                f"`sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or set "
                f"FASHION_MNIST_DIR to a folder holding the four *-ubyte.gz files, or "
                f"download them from {MIRRORS[0]} into {dest}/")


def locate(raw_dir: Path, mirrors=MIRRORS) -> Path:
    """The folder to read the dataset from: env var, Debian package, cache, else a download."""
    env = os.environ.get("FASHION_MNIST_DIR")
    if env:
        if not has_dataset(Path(env)):
            raise DataError(f"FASHION_MNIST_DIR={env} does not hold the four files "
                            f"{', '.join(f + '.gz' for f in FILES.values())}")
        return Path(env)
    for folder in (DEBIAN_DIR, raw_dir):
        if has_dataset(folder):
            return folder
    download(raw_dir, mirrors)
    return raw_dir


def load_prepared(path: Path) -> dict[str, np.ndarray]:
    """Read the prepared dataset that `prepare` wrote (train, evaluate, plot and lr_find use it)."""
    try:
        with np.load(path) as npz:
            return {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        raise DataError(f"{path} not found: run `dvc repro prepare` first") from None


def load(folder: Path) -> dict[str, np.ndarray]:
    """Read and verify the four files: ``{"train_images": (60000, 28, 28) uint8, ...}``."""
    checksums = expected_checksums()
    arrays = {}
    for role, stem in FILES.items():
        path = _file_in(folder, stem)
        if path is None:
            raise DataError(f"{folder}/{stem}.gz is missing")
        arrays[role] = parse_idx(read_verified(path, stem, checksums), str(path))
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"{folder}: {split} images {images.shape} and labels {labels.shape} "
                            f"do not match")
    return arrays
