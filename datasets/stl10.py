"""STL-10 (`stl10`): the 5k labelled training and 8k test images, 3 x 96 x 96.

Files: <data root>/stl10_binary/ (train_X.bin, train_y.bin, test_X.bin, test_y.bin from the
official stl10_binary.tar.gz), downloaded by torchvision.datasets.STL10 (checksummed; the
archive is 2.5 GB because it holds the unlabelled split too). The binaries are read here:
uint8 images stored channel by channel in column-major order, labels 1..10.

The FlexConv runs use no augmentation and centre-crop 96 (a no-op); the normalisation
statistics are not stated there, so "paper" and "train" both use this training split's.
Kept as uint8 and converted per batch (13k float32 images would take 1.4 GB).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from datasets import register_dataset
from datasets.images import check_options, image_loaded
from datasets.real import reading, require_files

FILES = ["train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin"]


def stl10_arrays(name: str, data_root: Path, download: bool):
    from torchvision.datasets import STL10  # lazy: +1.2 s, only to download (`run_all.py list` imports this module)

    folder = Path(data_root) / "stl10_binary"
    hint = (
        f"Put {', '.join(FILES)} (from stl10_binary.tar.gz, https://cs.stanford.edu/~acoates/stl10/) in {folder}, "
        "run once with internet (option download, on by default), or point --data-root / LKSBENCH_DATA elsewhere."
    )
    require_files(
        name,
        folder,
        FILES,
        hint=hint,
        download=download,
        fetch=lambda: STL10(str(data_root), split="train", download=True),
        url=STL10.url,
    )
    out = []
    for split in ("train", "test"):
        with reading(name, folder / f"{split}_X.bin", hint):
            x = np.fromfile(folder / f"{split}_X.bin", dtype=np.uint8).reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)
            y = np.fromfile(folder / f"{split}_y.bin", dtype=np.uint8).astype(np.int64) - 1
            if len(x) != len(y) or y.min() < 0 or y.max() > 9:
                raise ValueError(f"{len(x)} images, {len(y)} labels in [{y.min()}, {y.max()}]; expected labels 1..10")
        out.append((torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y)))
    return out


@register_dataset(
    "stl10",
    description="STL-10 labelled images (5k/8k); option resolution (bilinear), augment (crop + flip)",
    shape=(3, 96, 96),
    classes=10,
    source="download",
    paper_name="STL-10",
)
def stl10(*, seed, data_root, resolution: int = 96, augment: bool = False, norm: str = "paper", download: bool = True):
    check_options("stl10", norm=norm, resolution=resolution, augment=augment)
    train, test = stl10_arrays("stl10", data_root, download)
    return image_loaded(
        "stl10", train, test, paper_stats=None, norm=norm, resolution=resolution, augment=augment, lazy=True
    )
