"""CharacterTrajectories from the UEA multivariate archive, read from its `.ts` files (`char_trajectories`).

2,858 pen trajectories of 20 single-stroke letters, 3 channels (x, y velocity and pen-tip force),
unequal lengths up to 182 steps. As CKConv, FlexConv and SMPConv (their `char_trajectories.py`,
experiments.md 3): the archive's TRAIN and TEST files are concatenated; every channel is padded to
the longest series (182) by repeating its last value; labels are numbered 0-19 in order of first
appearance; the cases are re-split 70/15/15 stratified by class (scikit-learn `train_test_split`,
random_state 0, then 1 to halve the rest), fixed whatever the run seed, so every run sees one test
set. Normalisation: per channel with the training split's statistics (the papers' code normalises
per time index, a side effect of reducing the wrong axis; Neural CDE's normalises per channel). Causal,
as the papers' sequence models, which read the class at the last step.

Options: `sr` keeps every sr-th step (CKConv's sampling-rate experiments: 182 -> 91 / 46 / 23);
`drop_rate` drops that fraction of each series' steps after the padding and subsampling, marked
with zeros plus a mask channel (CKConv's missing-data experiments; datasets/missing.py).

Files (not downloaded: the archive is a large zip whose single-dataset copies changed in Nov 2023,
so the user fetches the version they mean): <data root>/CharacterTrajectories/
CharacterTrajectories_TRAIN.ts and CharacterTrajectories_TEST.ts, from Multivariate2018_ts.zip
(Multivariate_ts/CharacterTrajectories/) at timeseriesclassification.com.

The `.ts` format (sktime's specification): `#` comments, then `@` tags (@problemName, @timeStamps,
@missing, @univariate, @dimensions, @equalLength, @seriesLength, @classLabel true <labels>), then
@data and one case per line: each channel's values separated by commas, channels by ':', the class
label last; '?' is a missing value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from bench.base import UserError
from datasets import register_dataset
from datasets.base import Loaded
from datasets.missing import DROP_SEED, check_rate, dropped_count, fit_marked, with_nans
from datasets.real import reading, require_files
from datasets.tensors import tensor_dataset

CT = "CharacterTrajectories"
URL = "http://www.timeseriesclassification.com/Downloads/Archives/Multivariate2018_ts.zip"


def read_ts(path: Path) -> tuple[list[np.ndarray], list[str]]:
    """The cases of a `.ts` file, each a float array (channels, length), and their class labels as written."""
    series, labels = [], []
    in_data, declared = False, None
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if not line.startswith("@"):
                raise ValueError(f"line {number}: expected an @ tag before @data, got {line[:40]!r}")
            tag, *rest = line.split()
            tag = tag.lower()
            if tag == "@data":
                in_data = True
            elif tag == "@timestamps" and rest and rest[0].lower() == "true":
                raise ValueError("time-stamped series (@timeStamps true) are not supported")
            elif tag == "@classlabel":
                if not rest or rest[0].lower() != "true":
                    raise ValueError("the file declares no class labels (@classLabel false)")
                declared = rest[1:]
            continue
        *channels, label = line.split(":")
        if not channels:
            raise ValueError(f"line {number}: no values before the class label")
        values = [np.array([np.nan if v.strip() == "?" else float(v) for v in c.split(",")]) for c in channels]
        if len({len(v) for v in values}) != 1:
            raise ValueError(f"line {number}: the channels have different lengths")
        label = label.strip()
        if declared is not None and label not in declared:
            raise ValueError(f"line {number}: class {label!r} is not among the declared {declared}")
        series.append(np.stack(values))
        labels.append(label)
    if not in_data or not series:
        raise ValueError("no @data section with cases")
    if len({s.shape[0] for s in series}) != 1:
        raise ValueError("the cases have different numbers of channels")
    return series, labels


def pad_last(series: list[np.ndarray], length: int) -> np.ndarray:
    """(N, C, length): each series padded by repeating its last value (the papers' padding)."""
    out = np.empty((len(series), series[0].shape[0], length), dtype=np.float32)
    for i, s in enumerate(series):
        n = s.shape[1]
        out[i, :, :n] = s
        out[i, :, n:] = s[:, -1:]
    return out


def resplit(labels: np.ndarray, name: str) -> list[np.ndarray]:
    """The papers' 70/15/15 stratified split: (train, val, test) indices, fixed (random_state 0, then 1)."""
    from sklearn.model_selection import train_test_split  # lazy: scikit-learn adds 1 s to `run_all.py list`

    everything = np.arange(len(labels))
    try:
        train, rest = train_test_split(everything, train_size=0.7, random_state=0, shuffle=True, stratify=labels)
        val, test = train_test_split(rest, train_size=0.5, random_state=1, shuffle=True, stratify=labels[rest])
    except ValueError as exc:
        raise UserError(f"dataset {name!r}: cannot split {len(labels)} cases 70/15/15 by class ({exc})") from exc
    return [np.sort(train), np.sort(val), np.sort(test)]


def load_uea(name: str, problem: str, data_root: Path):
    """(x (N, C, L) float32, labels (N,) int64, class names) of TRAIN + TEST, padded to the longest case."""
    folder = Path(data_root) / problem
    files = [f"{problem}_TRAIN.ts", f"{problem}_TEST.ts"]
    hint = (
        f"Put {' and '.join(files)} in {folder} (from {URL}, folder Multivariate_ts/{problem}/; the single-dataset "
        "downloads changed in Nov 2023), or point --data-root / LKSBENCH_DATA at the folder that holds "
        f"{problem}/."
    )
    require_files(name, folder, files, hint=hint)
    series, labels = [], []
    for f in files:
        with reading(name, folder / f, hint):
            s, lab = read_ts(folder / f)
        series += s
        labels += lab
    if len({s.shape[0] for s in series}) != 1:
        raise UserError(f"dataset {name!r}: the TRAIN and TEST files have different numbers of channels. {hint}")
    classes = list(dict.fromkeys(labels))  # in order of first appearance, as the papers number them
    y = np.array([classes.index(lab) for lab in labels], dtype=np.int64)
    x = pad_last(series, max(s.shape[1] for s in series))
    if np.isnan(x).any():
        raise UserError(f"dataset {name!r}: the files hold missing values ('?'), which {problem} has none of. {hint}")
    return x, y, classes


@register_dataset(
    "char_trajectories",
    description="CharacterTrajectories (UEA): 20 pen-trajectory letters, 3 channels, padded to 182 steps "
    "(70/15/15 stratified re-split; options sr, drop_rate; manual download)",
    shape=(3, 182),
    classes=20,
    source="manual",
    paper_name="CharacterTrajectories",
    causal=True,
)
def char_trajectories(*, seed, data_root, sr: int = 1, drop_rate: float = 0.0):
    if isinstance(sr, bool) or not isinstance(sr, int) or not 1 <= sr <= 64:
        raise UserError(f"dataset 'char_trajectories': sr (keep every sr-th step) must be an integer in [1, 64], "
                        f"got {sr!r}")  # fmt: skip
    rate = check_rate("char_trajectories", drop_rate)
    x, y, classes = load_uea("char_trajectories", CT, data_root)
    x = torch.from_numpy(x[..., ::sr].copy())
    parts = [(x[idx], torch.from_numpy(y[idx])) for idx in resplit(y, "char_trajectories")]
    length = x.shape[-1]
    info = {"sr": sr, "sizes": [len(p[1]) for p in parts], "classes": classes}
    if not rate:
        train, val, test = (tensor_dataset(px, py) for px, py in parts)
        return Loaded(train, test, val=val, info=info, standardise=(0, 2))
    train, val, test = (TensorDataset(with_nans(px, split, rate), py)
                        for (px, py), split in zip(parts, ("train", "val", "test")))  # fmt: skip
    info.update(drop_rate=rate, drop_seed=DROP_SEED, dropped_steps=dropped_count(length, rate))
    return Loaded(train, test, val=val, info=info, fit_normalisation=fit_marked)
