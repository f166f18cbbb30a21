"""PhysioNet/CinC Challenge 2019 sepsis prediction (`physionet2019`), CKConv's irregularly sampled task.

40,336 ICU stays (training setA: 20,336, setB: 20,000), one pipe-separated `.psv` file each: a header,
then one row per hour with 41 columns: 34 time-varying measurements (8 vitals, 26 labs; empty = NaN),
Age, Gender, Unit1, Unit2, HospAdmTime, ICULOS (hours since ICU admission) and SepsisLabel.

Preprocessing, as CKConv's `datasets/physionet.py` after Kidger et al.'s Neural CDE `sepsis.py`
(experiments.md 2c):
- rows with ICULOS <= 72 are kept, each at step ICULOS - 1: a skipped hour is a row of NaN;
- one label per stay: the largest SepsisLabel of the kept rows (did the stay reach sepsis, or the 6 h before it);
- stays with 2 kept rows or fewer are dropped; every stay is padded to 72 steps with NaN;
- statics: Age, Gender, Unit1, Unit2, HospAdmTime with NaN -> 0 for Unit1, Unit2 and HospAdmTime, plus
  "observed" flags for Unit1 and Unit2: 7 values, repeated over the 72 steps;
- intensity: per measurement, the cumulative count of its observations up to each step;
- inputs: 75 channels x 72 steps (34 intensities, 34 values, 7 statics), CKConv's layout;
- split: 70/15/15 stratified by label (random_state 0, then 1 to halve the rest), fixed whatever the run
  seed, as CharacterTrajectories;
- normalisation: every channel standardised with the training split's observed (non-NaN) steps, then
  NaN -> 0 (the intensities say which values were measured).
The metric is the test AUC (ROC, of the softmax probability of label 1); the model has two outputs and
trains with cross-entropy, which is CKConv's BCE-with-logits on the difference of the two logits (CKConv
uses no class weight; Neural CDE's pos_weight 10 is not applied). Causal: read out at the last step.

Files (a manual download, credentialed access is not needed): <data root>/physionet2019/ holding the
`.psv` files of training_setA.zip and training_setB.zip from physionet.org/content/challenge-2019/1.0.0/,
in any subfolders. The parsed arrays are cached beside them in `lksbench-cache.npz` (a parse of 40k files
takes a minute; the cache is rebuilt when the set of files changes).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from bench.base import UserError
from datasets import register_dataset
from datasets.base import Loaded
from datasets.missing import fit_observed
from datasets.real import reading
from datasets.uea import resplit

FOLDER = "physionet2019"
URL = "https://physionet.org/content/challenge-2019/1.0.0/"
HOURS = 72
MEASURED = 34  # the time-varying columns, first in every file
STATIC_COLUMNS = ("Age", "Gender", "Unit1", "Unit2", "HospAdmTime")
ZERO_FILLED = ("Unit1", "Unit2", "HospAdmTime")  # NaN -> 0; Unit1 and Unit2 also get an observed flag
CHANNELS = 2 * MEASURED + len(STATIC_COLUMNS) + 2
HINT = (
    f"Put the .psv files of training_setA.zip and training_setB.zip ({URL}) under <data root>/{FOLDER}/ "
    "(any subfolders), or point --data-root / LKSBENCH_DATA at the folder that holds it."
)


def read_psv(path: Path) -> tuple[np.ndarray, np.ndarray, int] | None:
    """One stay: (values (34, 72) with NaN, statics (7,), label), or None when 2 rows or fewer are kept."""
    lines = path.read_text().splitlines()
    header = lines[0].strip().split("|")
    col = {name: i for i, name in enumerate(header)}
    for needed in (*STATIC_COLUMNS, "ICULOS", "SepsisLabel"):
        if needed not in col:
            raise ValueError(f"no {needed} column in the header")
    if len(header) < MEASURED + 7:
        raise ValueError(f"{len(header)} columns, expected 41")
    values = np.full((MEASURED, HOURS), np.nan, dtype=np.float32)
    label, kept, last = 0, 0, None
    for line in lines[1:]:
        if not line.strip():
            continue
        row = [float(v) if v not in ("", "NaN", "nan") else np.nan for v in line.strip().split("|")]
        if len(row) != len(header):
            raise ValueError(f"a row has {len(row)} fields, the header {len(header)}")
        hour = int(row[col["ICULOS"]])
        if hour > HOURS:
            break  # the rows are in time order: the rest is later still
        if hour < 1:
            raise ValueError(f"ICULOS {hour} is below 1")
        values[:, hour - 1] = row[:MEASURED]
        label = max(label, int(row[col["SepsisLabel"]]))
        kept, last = kept + 1, row
    if kept <= 2:
        return None
    statics = [last[col[name]] for name in STATIC_COLUMNS]
    observed = [float(not np.isnan(last[col[name]])) for name in ("Unit1", "Unit2")]
    statics = [0.0 if name in ZERO_FILLED and np.isnan(v) else v for name, v in zip(STATIC_COLUMNS, statics)]
    return values, np.array(statics + observed, dtype=np.float32), label


def stay_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.psv"), key=lambda p: p.name)


def load_stays(name: str, folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values (N, 34, 72), statics (N, 7), labels (N,)) of every stay kept, from the cache when it is current."""
    files = stay_files(folder)
    if not files:
        raise UserError(f"dataset {name!r}: no .psv files under {folder}. {HINT}")
    key = hashlib.sha256("\n".join(f"{p.name} {p.stat().st_size}" for p in files).encode()).hexdigest()[:16]
    cache = folder / "lksbench-cache.npz"
    if cache.exists():
        with reading(name, cache, f"(a cache of the .psv files: delete it to rebuild) {HINT}"):
            saved = np.load(cache)
            if str(saved["key"]) == key:
                return saved["values"], saved["statics"], saved["labels"]
    values, statics, labels = [], [], []
    for path in files:
        with reading(name, path, HINT):
            stay = read_psv(path)
        if stay is not None:
            values.append(stay[0])
            statics.append(stay[1])
            labels.append(stay[2])
    if len(labels) < 20 or len(set(labels)) < 2:
        raise UserError(f"dataset {name!r}: {len(labels)} stays with more than 2 hours and labels {sorted(set(labels))}"
                        f" in {folder}: too few to split 70/15/15 by label. {HINT}")  # fmt: skip
    arrays = np.stack(values), np.stack(statics), np.array(labels, dtype=np.int64)
    _save_cache(cache, key, *arrays)
    return arrays


def _save_cache(path: Path, key: str, values, statics, labels) -> None:
    """Best effort (a read-only data folder parses again next time), and never half a file."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".lksbench-cache.", suffix=".npz")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, key=key, values=values, statics=statics, labels=labels)
        os.replace(tmp, path)
    except OSError:
        pass


def inputs(values: np.ndarray, statics: np.ndarray) -> torch.Tensor:
    """(N, 75, 72): the cumulative observation counts, the values (NaN where not measured), the statics."""
    v = torch.from_numpy(values)
    intensity = (~v.isnan()).float().cumsum(-1)
    s = torch.from_numpy(statics)[:, :, None].expand(-1, -1, HOURS)
    return torch.cat([intensity, v, s], dim=1)


@register_dataset(
    "physionet2019",
    description="PhysioNet 2019 sepsis: 75 channels x 72 hourly steps, missing values, binary label, test AUC "
    "(70/15/15 stratified; manual download)",
    shape=(CHANNELS, HOURS),
    classes=2,
    source="manual",
    paper_name="PhysioNet",
    causal=True,
    metric="auc",
)
def physionet2019(*, seed, data_root):
    values, statics, labels = load_stays("physionet2019", Path(data_root) / FOLDER)
    x, y = inputs(values, statics), torch.from_numpy(labels)
    train, val, test = (TensorDataset(x[idx], y[idx]) for idx in resplit(labels, "physionet2019"))
    info = {"stays": len(labels), "positive": int(labels.sum()), "sizes": [len(train), len(val), len(test)]}
    return Loaded(train, test, val=val, info=info, fit_normalisation=fit_observed)
