"""Speech Commands v0.02 on 10 keywords: raw audio (`sc_raw`, 1 x 16000) and MFCC (`sc_mfcc`, 20 x 161).

As the CKConv and FlexConv papers (after Kidger et al.'s NCDE code): the keywords yes, no, up,
down, left, right, on, off, stop, go; only clips of exactly 16,000 samples (1 s; 34,975 in v0.02);
a 70/15/15 split stratified by class (scikit-learn, random_state 0, then 1 for val/test),
fixed whatever the run seed; split="official" uses the dataset's validation_list.txt and
testing_list.txt instead. Audio is int16 / 2**15. MFCC: torchaudio's, 20 coefficients,
n_fft 200, 64 mels, log-mels. Normalisation with training-split statistics per channel (the
reference code's transpose makes it per time index instead; that is a bug, not a choice).
Option sr subsamples the time axis (x[..., ::sr]) as CKConv's sampling-rate experiments; sc_raw's
drop_rate drops that fraction of each clip's steps as its missing-data experiments (datasets/missing.py).

Files: torchaudio's layout, <data root>/SpeechCommands/speech_commands_v0.02/<keyword>/*.wav,
downloaded (2.3 GB, checksummed) by torchaudio.datasets.SPEECHCOMMANDS when missing. The wav
files are read with soundfile (torchaudio's own loader needs torchcodec/ffmpeg). File names
are sorted, so the split does not depend on the file system's listing order.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from bench.base import UserError
from datasets import register_dataset
from datasets.arrays import ArrayDataset
from datasets.base import Loaded
from datasets.missing import DROP_SEED, check_rate, dropped_count, mark, observed_mask
from datasets.real import reading, require_files
from datasets.tensors import standardise, tensor_dataset

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SAMPLE_RATE = 16_000
CLIP = 16_000
LISTS = ("validation_list.txt", "testing_list.txt")
URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
SPLITS = ("stratified", "official")
MFCC_CHUNK = 2048


def folder_of(data_root: Path) -> Path:
    return Path(data_root) / "SpeechCommands" / "speech_commands_v0.02"


def read_clips(name: str, data_root: Path, split: str, download: bool):
    """int16 clips (N, 1, 16000), labels (N,), and relative paths "keyword/file.wav", in sorted order."""
    import soundfile  # lazy: needs the system's libsndfile, which `run_all.py list` must not

    folder = folder_of(data_root)
    hint = (
        f"Put the contents of speech_commands_v0.02.tar.gz (one folder per keyword and {', '.join(LISTS)}) in "
        f"{folder}, run once with internet (option download, on by default; 2.3 GB), or point --data-root / "
        "LKSBENCH_DATA at the folder that holds SpeechCommands/."
    )

    def fetch():
        from torchaudio.datasets import SPEECHCOMMANDS  # lazy: torchaudio is needed by Speech Commands alone

        SPEECHCOMMANDS(str(data_root), download=True)

    needed = list(KEYWORDS) + (list(LISTS) if split == "official" else [])
    require_files(name, folder, needed, hint=hint, download=download, fetch=fetch, url=URL)
    paths = [p for label in KEYWORDS for p in sorted((folder / label).glob("*.wav"))]
    clips = np.empty((len(paths), CLIP), dtype=np.int16)
    labels, kept, n = [], [], 0
    for path in paths:
        with reading(name, path, hint):
            audio, rate = soundfile.read(path, dtype="int16")
            if rate != SAMPLE_RATE or audio.ndim != 1:
                raise ValueError(f"expected mono audio at {SAMPLE_RATE} Hz, got {audio.shape} at {rate} Hz")
        if len(audio) != CLIP:  # the papers keep only full 1 s clips
            continue
        clips[n] = audio
        labels.append(KEYWORDS.index(path.parent.name))
        kept.append(f"{path.parent.name}/{path.name}")
        n += 1
    if n == 0:
        raise UserError(f"dataset {name!r}: no 1 s clips of the 10 keywords in {folder}. {hint}")
    return torch.from_numpy(clips[:n]).unsqueeze(1), torch.tensor(labels), kept


def split_indices(name: str, data_root: Path, split: str, labels: torch.Tensor, kept: list[str]):
    """(train, val, test) index arrays."""
    if split == "stratified":
        from sklearn.model_selection import train_test_split  # lazy: scikit-learn adds 1 s to `run_all.py list`

        y = labels.numpy()
        everything = np.arange(len(y))
        try:
            train, rest = train_test_split(everything, train_size=0.7, random_state=0, shuffle=True, stratify=y)
            val, test = train_test_split(rest, train_size=0.5, random_state=1, shuffle=True, stratify=y[rest])
        except ValueError as exc:
            raise UserError(f"dataset {name!r}: cannot split {len(y)} clips 70/15/15 by class ({exc})") from exc
        return np.sort(train), np.sort(val), np.sort(test)
    folder = folder_of(data_root)
    position = {path: i for i, path in enumerate(kept)}
    held_out = []
    for list_name in LISTS:
        with reading(name, folder / list_name, ""):
            lines = (folder / list_name).read_text().split()
        held_out.append(np.array(sorted(position[p] for p in lines if p in position), dtype=np.int64))
    train = np.setdiff1d(np.arange(len(kept)), np.concatenate(held_out))
    return train, held_out[0], held_out[1]


def load(name: str, data_root: Path, split: str, sr: int, download: bool):
    """(train, val, test) as (clips, labels) pairs, clips int16 (N, 1, L)."""
    if split not in SPLITS:
        raise UserError(f"dataset {name!r}: split must be one of {', '.join(SPLITS)}, got {split!r}")
    if not isinstance(sr, int) or isinstance(sr, bool) or not 1 <= sr <= 1000:
        raise UserError(f"dataset {name!r}: sr (keep every sr-th step) must be an integer in [1, 1000], got {sr!r}")
    clips, labels, kept = read_clips(name, data_root, split, download)
    return [
        (clips[idx], labels[idx]) for idx in map(torch.from_numpy, split_indices(name, data_root, split, labels, kept))
    ]


class RawToFloat:
    """int16 clips -> float32, scaled to [-1, 1), standardised with the training split's mean and std."""

    def __init__(self, mean: float, std: float):
        self.mean, self.std = mean, std

    def __call__(self, clips: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        return (clips.to(torch.float32) / 2**15 - self.mean) / self.std


class MarkDropped:
    """After `to_float`: zero the steps dropped from each clip (by its index in the split) and append the
    mask channel (datasets/missing.py); the mask is drawn per batch, so no (N, 16000) mask is held."""

    def __init__(self, to_float, split: str, drop_rate: float):
        self.to_float, self.split, self.drop_rate = to_float, split, drop_rate

    def __call__(self, clips: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        observed = observed_mask(index, clips.shape[-1], self.drop_rate, self.split)
        return mark(self.to_float(clips, index), observed)


def raw_stats(clips: torch.Tensor, drop_rate: float = 0.0) -> tuple[float, float]:
    """Mean and std of the clips' samples; with drop_rate, of the observed (not dropped) samples only."""
    total, total_sq, count = 0.0, 0.0, 0
    for start in range(0, len(clips), MFCC_CHUNK):
        chunk = clips[start : start + MFCC_CHUNK].to(torch.float64) / 2**15
        if drop_rate:
            keep = observed_mask(torch.arange(start, start + len(chunk)), chunk.shape[-1], drop_rate, "train")
            chunk = chunk * keep.unsqueeze(1)
            count += int(keep.sum()) * chunk.shape[1]
        else:
            count += chunk.numel()
        total, total_sq = total + chunk.sum().item(), total_sq + chunk.square().sum().item()
    mean = total / max(count, 1)
    return mean, max(total_sq / max(count, 1) - mean**2, 1e-12) ** 0.5


@register_dataset(
    "sc_raw",
    description="Speech Commands, 10 keywords, raw 1 s audio at 16 kHz (70/15/15; options split, sr; causal)",
    shape=(1, 16000),
    classes=10,
    source="download",
    paper_name="SC_raw",
    causal=True,
)
def sc_raw(*, seed, data_root, split: str = "stratified", sr: int = 1, download: bool = True, drop_rate: float = 0.0):
    """Kept as int16 and converted per batch (float32 would take 2.2 GB).

    drop_rate: CKConv's missing-data setting (30 / 50 / 70 %), after the subsampling: zeros plus a mask
    channel (2 input channels), fixed per clip whatever the run seed, in every split."""
    rate = check_rate("sc_raw", drop_rate)
    parts = load("sc_raw", data_root, split, sr, download)
    parts = [(clips[..., ::sr].contiguous(), y) for clips, y in parts]
    to_float = RawToFloat(*raw_stats(parts[0][0], rate))
    names = ("train", "val", "test")
    train, val, test = (ArrayDataset(clips, y, MarkDropped(to_float, part, rate) if rate else to_float)
                        for (clips, y), part in zip(parts, names))  # fmt: skip
    info = {"split": split, "sr": sr, "sizes": [len(train), len(val), len(test)]}
    if rate:
        info.update(drop_rate=rate, drop_seed=DROP_SEED, dropped_steps=dropped_count(parts[0][0].shape[-1], rate))
    return Loaded(train, test, val=val, info=info)


def mfcc(clips: torch.Tensor) -> torch.Tensor:
    """(N, 1, 16000) int16 -> (N, 20, 161) float32, by chunks."""
    import torchaudio  # lazy: needed by Speech Commands alone, and `run_all.py list` imports this module

    with warnings.catch_warnings():  # n_mels 64 over 101 frequency bins leaves empty filters: the papers' setting
        warnings.filterwarnings("ignore", message="At least one mel filterbank has all zero values")
        transform = torchaudio.transforms.MFCC(
            sample_rate=SAMPLE_RATE, n_mfcc=20, log_mels=True, melkwargs={"n_fft": 200, "n_mels": 64}
        )
        out = [
            transform(clips[s : s + MFCC_CHUNK, 0].to(torch.float32) / 2**15) for s in range(0, len(clips), MFCC_CHUNK)
        ]
    return torch.cat(out) if out else torch.empty(0, 20, 161)


@register_dataset(
    "sc_mfcc",
    description="Speech Commands, 10 keywords, 20 MFCCs x 161 frames (70/15/15; options split, sr; causal)",
    shape=(20, 161),
    classes=10,
    source="download",
    paper_name="SC (MFCC)",
    causal=True,
)
def sc_mfcc(*, seed, data_root, split: str = "stratified", sr: int = 1, download: bool = True):
    parts = [(mfcc(clips)[..., ::sr].contiguous(), y) for clips, y in load("sc_mfcc", data_root, split, sr, download)]
    xs = standardise(*(x for x, _ in parts), dims=(0, 2))  # per coefficient, training statistics
    train, val, test = (tensor_dataset(x, y) for x, (_, y) in zip(xs, parts))
    info = {"split": split, "sr": sr, "sizes": [len(train), len(val), len(test)]}
    return Loaded(train, test, val=val, info=info)
