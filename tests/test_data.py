import gzip
import os
import pickle

import numpy as np
import pytest
import torch

from connpack import data
from connpack.errors import DataError


def _write_idx(path, arr, gz=False):
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    raw = header + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_files_are_read_and_normalised(tmp_path, gz):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    imgs = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    suffix = ".gz" if gz else ""
    _write_idx(raw / f"t10k-images-idx3-ubyte{suffix}", imgs, gz)
    _write_idx(raw / f"t10k-labels-idx1-ubyte{suffix}", np.array([7, 2, 1]), gz)
    x, y = data.load("mnist", "test", tmp_path)
    assert x.shape == (3, 1, 28, 28) and y.tolist() == [7, 2, 1]
    assert float(x[0, 0, 0, 0]) == pytest.approx((0 / 255 - 0.1307) / 0.3081)


def test_missing_data_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match="connpack data fetch mnist"):
        data.load("mnist", "train", tmp_path)
    with pytest.raises(DataError, match="never downloads"):
        data.load("cifar10", "train", tmp_path)


def test_cifar_torchvision_layout_and_refusal_of_code(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batch = {"data": np.full((2, 3072), 9, dtype=np.uint8), "labels": [3, 4], "batch_label": "test"}
    (folder / "test_batch").write_bytes(pickle.dumps(batch))
    x, y = data.load("cifar10", "test", tmp_path)
    assert x.shape == (2, 3, 32, 32) and y.tolist() == [3, 4]

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    (folder / "test_batch").write_bytes(pickle.dumps({"data": Evil(), "labels": [1]}))
    with pytest.raises(DataError, match="refused"):
        data.load("cifar10", "test", tmp_path)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("protocol", [2, 4])
def test_cifar_batch_refusals_name_the_dataset(tmp_path, protocol):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    images = np.zeros((1, 3072), dtype=np.uint8)
    for batch, message in [
        ({"labels": [1, 2], "data": images}, r"not a CIFAR-10 batch \(no labels and matching"),
        ({"labels": [10], "data": images}, "CIFAR-10 labels must be 0..9"),
        ({"labels": [1], "data": images, "x": Evil()}, r"CIFAR-10 batch refers to \w+\.system: refused"),
    ]:
        (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=protocol))
        with pytest.raises(DataError, match=message):
            data.load("cifar10", "test", tmp_path)
    (folder / "test_batch").write_bytes(pickle.dumps({"labels": [1], "data": images}, protocol=protocol)[:-40])
    with pytest.raises(DataError, match=r"not a CIFAR-10 batch \(\w+\)"):
        data.load("cifar10", "test", tmp_path)
    (tmp_path / "cifar-100-python").mkdir()
    batch = {"coarse_labels": [3, 1], "fine_labels": [42, 99], "data": np.full((2, 3072), 7, dtype=np.uint8)}
    (tmp_path / "cifar-100-python" / "test").write_bytes(pickle.dumps(batch, protocol=protocol))
    x, y = data.load("cifar100", "test", tmp_path)
    assert x.shape == (2, 3, 32, 32) and y.tolist() == [42, 99]


def test_data_order_is_a_deterministic_permutation():
    a = data.batches(100, 25, seed=0, epoch=0)
    b = data.batches(100, 25, seed=0, epoch=0)
    c = data.batches(100, 25, seed=0, epoch=1)
    flat = np.concatenate([t.numpy() for t in a])
    assert sorted(flat.tolist()) == list(range(100))
    assert all((x == y).all() for x, y in zip(a, b))
    assert not all((x == y).all() for x, y in zip(a, c))


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("bytes_keys", [False, True])
def test_cifar_batches_are_read_without_unpickling(tmp_path, protocol, bytes_keys):
    """The real files were written by Python 2 (bytes keys); any protocol reads the same."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    images = (np.arange(3 * 3072) % 251).astype(np.uint8).reshape(3, 3072)
    key = (lambda k: k.encode()) if bytes_keys else (lambda k: k)
    batch = {
        key("batch_label"): key("testing batch 1 of 1"),
        key("labels"): [9, 0, 300 % 10],
        key("data"): images,
        key("filenames"): [key("a.png"), key("b.png"), key("c.png")],
    }
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=protocol))
    x, y = data.load("cifar10", "test", tmp_path)
    assert y.tolist() == [9, 0, 0]
    raw = (
        x * torch.tensor(data.info("cifar10").std).view(1, 3, 1, 1)
        + torch.tensor(data.info("cifar10").mean).view(1, 3, 1, 1)
    ) * 255
    assert np.array_equal(raw.round().to(torch.uint8).numpy().reshape(3, 3072), images)


def _fake_deb(path, members: dict[str, bytes]) -> None:
    """A minimal Debian package: ar archive with debian-binary and a data.tar.xz holding ``members``."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(f"./usr/share/datasets/fashion-mnist/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    out = b"!<arch>\n"
    for name, body in (("debian-binary", b"2.0\n"), ("data.tar.xz", buf.getvalue())):
        out += f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}`\n".encode() + body
        out += b"\n" if len(body) % 2 else b""
    path.write_bytes(out)


def test_fetch_fashion_mnist_from_the_debian_package(tmp_path, monkeypatch):
    import gzip
    import hashlib

    from connpack import data as d

    idx = {
        name: bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big") + bytes([i, i + 1, i + 2])
        for i, name in enumerate(d.FASHION_SHA256)
    }
    monkeypatch.setattr(d, "FASHION_SHA256", {k: hashlib.sha256(v).hexdigest() for k, v in idx.items()})
    monkeypatch.setattr(d, "FASHION_SYSTEM_DIR", tmp_path / "not-installed")
    deb = tmp_path / "dataset-fashion-mnist_1_all.deb"
    _fake_deb(deb, {k + ".gz": gzip.compress(v) for k, v in idx.items()})
    monkeypatch.setattr(d, "_apt_download", lambda package, folder, apt: deb)
    events = []
    raw = d.fetch_fashion_mnist(tmp_path / "data", progress=events.append)
    assert raw == tmp_path / "data" / "FashionMNIST" / "raw"
    assert [e["done"] for e in events] == [0, 1, 2, 3, 4, 5] and {e["total"] for e in events} == {5}
    for name, blob in idx.items():
        assert gzip.decompress((raw / (name + ".gz")).read_bytes()) == blob
    assert d.fetch_fashion_mnist(tmp_path / "data") == raw  # present: a no-op


def test_fetch_fashion_mnist_refuses_wrong_bytes(tmp_path, monkeypatch):
    import gzip

    from connpack import data as d

    monkeypatch.setattr(d, "FASHION_SYSTEM_DIR", tmp_path / "not-installed")
    deb = tmp_path / "x.deb"
    _fake_deb(deb, {k + ".gz": gzip.compress(b"not fashion") for k in d.FASHION_SHA256})
    monkeypatch.setattr(d, "_apt_download", lambda package, folder, apt: deb)
    with pytest.raises(DataError, match="sha256"):
        d.fetch_fashion_mnist(tmp_path / "data")
    assert not any((tmp_path / "data").rglob("*.gz"))  # nothing half-fetched
    (tmp_path / "bad.deb").write_bytes(b"garbage")
    monkeypatch.setattr(d, "_apt_download", lambda package, folder, apt: tmp_path / "bad.deb")
    with pytest.raises(DataError, match="not a Debian package"):
        d.fetch_fashion_mnist(tmp_path / "data")
