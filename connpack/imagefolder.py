"""Streamed image datasets: ``--dataset imagefolder:DIR`` (torchvision's ImageFolder layout, e.g. ImageNet).

    DIR/train/<class>/<image>      training split
    DIR/val/<class>/<image>        test split (DIR/test/ when there is no val/)

Classes are the sorted folder names of DIR/train (torchvision's ``find_classes``), labels their indices.
Images are decoded by PIL in DataLoader workers (``--workers``) and never held in memory together. The
standard transforms: train = RandomResizedCrop(size) + horizontal flip; test = Resize(size * 256/224) +
CenterCrop(size); both ToTensor + the ImageNet mean/std.

Determinism: the order is connpack.data.batches (a pure function of seed and epoch, sharded across ranks, as
for every dataset), and each training image's augmentation draws from a generator seeded by (seed, epoch,
index), so a run gives the same batches whatever the number of workers or ranks, and a resumed run replays
the interrupted one.
"""

from __future__ import annotations

from pathlib import Path

from connpack.errors import DataError, SpecError

PREFIX = "imagefolder:"
MEAN = (0.485, 0.456, 0.406)  # ImageNet
STD = (0.229, 0.224, 0.225)
EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def is_imagefolder(name: str) -> bool:
    return name.startswith(PREFIX)


def root_of(name: str) -> Path:
    root = Path(name[len(PREFIX) :])
    if not str(root):
        raise SpecError("--dataset imagefolder:DIR needs a folder")
    return root


def split_dir(root: Path, split: str) -> Path:
    if split == "train":
        folder = root / "train"
    else:
        folder = root / "val" if (root / "val").is_dir() else root / "test"
    if not folder.is_dir():
        raise DataError(
            f"{root}: no {folder.name}/ folder (ImageFolder layout: {root}/train/<class>/..., {root}/val/<class>/...)"
        )
    return folder


def classes(root: Path) -> tuple[str, ...]:
    """Class names in label order: the sorted sub-folders of DIR/train."""
    names = tuple(sorted(p.name for p in split_dir(root, "train").iterdir() if p.is_dir()))
    if not names:
        raise DataError(f"{root}/train has no class folders")
    return names


def _samples(folder: Path, names: tuple[str, ...]) -> list[tuple[str, int]]:
    out = []
    for label, name in enumerate(names):
        d = folder / name
        if d.is_dir():
            out += [(str(p), label) for p in sorted(d.rglob("*")) if p.suffix.lower() in EXTENSIONS and p.is_file()]
    if not out:
        raise DataError(f"{folder}: no images ({', '.join(EXTENSIONS)}) in its class folders")
    return out


def _seed(seed: int, epoch: int, index: int) -> int:
    return (seed * 1_000_003 + epoch) * 2_147_483_647 + index & 0x7FFF_FFFF_FFFF_FFFF


class Folder:
    """One split, a map-style dataset for torch's DataLoader. Items are keyed by index, or by (index, epoch)
    for training (the augmentation's seed)."""

    def __init__(
        self, root: Path, split: str, size: int = 224, seed: int = 0, limit: int | None = None, raw: bool = False
    ):
        from torchvision import transforms as T

        self.train = split == "train"
        self.seed = seed
        self.samples = _samples(split_dir(root, split), classes(root))[:limit]
        norm = [T.ToTensor()] if raw else [T.ToTensor(), T.Normalize(MEAN, STD)]  # raw: pixels / 255
        if self.train:
            self.transform = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), *norm])
        else:
            self.transform = T.Compose([T.Resize(size * 256 // 224), T.CenterCrop(size), *norm])

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key):
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        path, label = self.samples[index]
        from PIL import Image

        try:
            with Image.open(path) as im:
                img = im.convert("RGB")
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: not a readable image ({e})") from None
        if not self.train:
            return self.transform(img), label
        import torch

        with torch.random.fork_rng(devices=[]):  # the transforms draw from torch's global generator
            torch.manual_seed(_seed(self.seed, epoch, index))
            return self.transform(img), label
