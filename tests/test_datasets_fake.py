"""The real-data loaders on tiny fake copies written in each dataset's own on-disk format.

The network is blocked for every test here: a loader that found its files must not try to
download, and one that did not must fail with the one clear message, at once.
"""

from __future__ import annotations

import gzip
import pickle
import socket
import struct
import time

import numpy as np
import pytest
import soundfile
import torch

from bench.base import UserError
from bench.run.batches import batches
from datasets import get_dataset
from datasets.augment import CropFlip
from datasets.images import IMAGENET_MEAN, IMAGENET_STD
from datasets.speech_commands import KEYWORDS

from conftest import run_cli

RNG = np.random.default_rng(0)
N_MNIST, N_CIFAR, N_STL, N_IMNET = (50, 20), (50, 10), (20, 16), (40, 12)
REAL = ["mnist", "smnist", "pmnist", "cifar10", "cifar100", "scifar10", "npcifar10", "stl10", "sc_raw", "sc_mfcc"]


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every connection attempt fails at once and is recorded."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


# -- fake files ----------------------------------------------------------------------------
def write_idx(path, array: np.ndarray, gz: bool = False):
    header = struct.pack(">I", 0x0800 | array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(f"{path}.gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def fake_mnist(root, gz=False):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    out = {}
    for prefix, n in zip(("train", "t10k"), N_MNIST):
        x, y = RNG.integers(0, 256, (n, 28, 28)), RNG.integers(0, 10, n)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", x, gz)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", y, gz)
        out[prefix] = (x, y)
    return out


def fake_cifar(root, classes=10):
    folder = root / ("cifar-10-batches-py" if classes == 10 else "cifar-100-python")
    folder.mkdir(parents=True)
    files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"] if classes == 10 else ["train", "test"]
    per_file = {f: N_CIFAR[1] if "test" in f else N_CIFAR[0] // (len(files) - 1) for f in files}
    images = {}
    for f, n in per_file.items():
        data, labels = RNG.integers(0, 256, (n, 3072), dtype=np.uint8), RNG.integers(0, classes, n).tolist()
        key = "labels" if classes == 10 else "fine_labels"
        batch = {"data": data, key: labels, "batch_label": f} | ({} if classes == 10 else {"coarse_labels": labels})
        with open(folder / f, "wb") as fh:
            pickle.dump(batch, fh)
        images[f] = (data.reshape(-1, 3, 32, 32), np.array(labels))
    return images


def fake_stl10(root):
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    out = {}
    for split, n in zip(("train", "test"), N_STL):
        x = RNG.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)
        y = (np.arange(n) % 10 + 1).astype(np.uint8)
        x.transpose(0, 1, 3, 2).tofile(folder / f"{split}_X.bin")  # STL-10 stores each channel column-major
        y.tofile(folder / f"{split}_y.bin")
        out[split] = (x, y)
    return out


def fake_imagenet32(root):
    out = {}
    for sub, names, n in (("Imagenet32_train_npz", [f"train_data_batch_{i}" for i in range(1, 11)], N_IMNET[0] // 10),
                          ("Imagenet32_val_npz", ["val_data"], N_IMNET[1])):  # fmt: skip
        (root / "imagenet32" / sub).mkdir(parents=True)
        for name in names:
            data, labels = RNG.integers(0, 256, (n, 3072), dtype=np.uint8), RNG.integers(1, 1001, n)
            np.savez(root / "imagenet32" / sub / f"{name}.npz", data=data, labels=labels.tolist(), mean=data.mean(0))
            out[name] = (data, labels)
    return out


CLIPS_PER_WORD = 10


def fake_speech_commands(root):
    folder = root / "SpeechCommands" / "speech_commands_v0.02"
    clips = {}
    for word in (*KEYWORDS, "bed", "_background_noise_"):
        (folder / word).mkdir(parents=True)
        for k in range(CLIPS_PER_WORD + 1):
            length = 16_000 if k < CLIPS_PER_WORD else 12_000  # the last clip is short: the papers drop it
            audio = (RNG.standard_normal(length) * 3000).astype(np.int16)
            rel = f"{word}/spk{k:02d}_nohash_0.wav"
            soundfile.write(folder / rel, audio, 16_000, subtype="PCM_16")
            clips[rel] = audio
    val = [f"{w}/spk00_nohash_0.wav" for w in KEYWORDS] + ["bed/spk01_nohash_0.wav"]
    test = [f"{w}/spk{k:02d}_nohash_0.wav" for w in KEYWORDS for k in (1, 2)] + [
        f"yes/spk{CLIPS_PER_WORD:02d}_nohash_0.wav"
    ]
    (folder / "validation_list.txt").write_text("\n".join(val) + "\n")
    (folder / "testing_list.txt").write_text("\n".join(test) + "\n")
    return clips


def stacked(dataset):
    """(x, y) of a whole dataset, through the harness's own batching."""
    xs, ys = zip(*batches(dataset, 16, shuffle=False, generator=None, device="cpu"))
    return torch.cat(xs), torch.cat(ys)


# -- MNIST ---------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [False, True])
def test_mnist_images_and_sequences(tmp_path, gz, no_network):
    raw = fake_mnist(tmp_path, gz)
    data = get_dataset("mnist", data_root=tmp_path)
    assert (len(data.train), len(data.val), len(data.test)) == (45, 5, N_MNIST[1])
    assert data.task.input_shape == (1, 28, 28) and data.task.num_classes == 10 and data.augment is None
    x, y = stacked(data.test)
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape == (N_MNIST[1], 1, 28, 28)
    expected = (torch.tensor(raw["t10k"][0], dtype=torch.float32) / 255 - 0.1307) / 0.3081
    torch.testing.assert_close(x[:, 0], expected)
    assert y.tolist() == raw["t10k"][1].tolist()

    seq = get_dataset("smnist", data_root=tmp_path)
    assert seq.task.input_shape == (1, 784) and seq.task.causal
    xs, _ = stacked(seq.test)
    torch.testing.assert_close(xs, x.reshape(-1, 1, 784))  # row-major pixel order

    small = get_dataset("mnist", data_root=tmp_path, resolution=14)
    assert small.task.size == (14, 14) and small.train.tensors[0].shape[1:] == (1, 14, 14)
    assert no_network == []


def test_pmnist_one_permutation_for_every_split(tmp_path, no_network):
    fake_mnist(tmp_path)
    plain = get_dataset("smnist", data_root=tmp_path, seed=3)
    perm_data = get_dataset("pmnist", data_root=tmp_path, seed=3)
    perm = torch.tensor(perm_data.info["permutation"])
    assert sorted(perm.tolist()) == list(range(784)) and perm_data.info["permutation_seed"] == 3
    for split in ("train", "val", "test"):
        xp, yp = getattr(perm_data, split).tensors
        x, y = getattr(plain, split).tensors
        torch.testing.assert_close(xp, x[..., perm])
        assert torch.equal(yp, y)
    again = get_dataset("pmnist", data_root=tmp_path, seed=3)
    other = get_dataset("pmnist", data_root=tmp_path, seed=4)
    assert again.info["permutation"] == perm_data.info["permutation"] != other.info["permutation"]
    assert no_network == []


# -- CIFAR ---------------------------------------------------------------------------------
def test_cifar10_images_augmentation_and_resolution(tmp_path, no_network):
    raw = fake_cifar(tmp_path)
    data = get_dataset("cifar10", data_root=tmp_path)
    assert (len(data.train), len(data.val), len(data.test)) == (45, 5, N_CIFAR[1])
    assert data.task.input_shape == (3, 32, 32) and data.task.num_classes == 10
    x, y = stacked(data.test)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    torch.testing.assert_close(x, (torch.tensor(raw["test_batch"][0]).float() / 255 - mean) / std)
    assert y.tolist() == raw["test_batch"][1].tolist() and 0 <= y.min() and y.max() < 10
    assert isinstance(data.augment, CropFlip) and data.augment.pad == 4
    torch.testing.assert_close(torch.tensor(data.augment.fill), (-mean / std).flatten())

    small = get_dataset("cifar10", data_root=tmp_path, resolution=16, augment=False, norm="train")
    assert small.task.size == (16, 16) and small.augment is None
    xs = small.train.tensors[0]
    assert xs.shape[1:] == (3, 16, 16)
    part = small.train.tensors[0]  # norm="train": standardised on the training part, after the validation carve
    assert part.mean((0, 2, 3)).abs().max() < 0.05
    assert get_dataset("cifar10", data_root=tmp_path, resolution=16).augment.pad == 2  # scaled with the size
    assert no_network == []


def test_cifar100_fine_labels(tmp_path):
    raw = fake_cifar(tmp_path, classes=100)
    data = get_dataset("cifar100", data_root=tmp_path)
    assert data.task.num_classes == 100 and data.task.input_shape == (3, 32, 32)
    assert data.test.tensors[1].tolist() == raw["test"][1].tolist()
    assert len(data.train) + len(data.val) == N_CIFAR[0]


def test_scifar10_is_row_major_with_three_channels(tmp_path):
    fake_cifar(tmp_path)
    images = get_dataset("cifar10", data_root=tmp_path, augment=False).test.tensors[0]
    seq = get_dataset("scifar10", data_root=tmp_path)
    assert seq.task.input_shape == (3, 1024) and seq.task.causal
    torch.testing.assert_close(seq.test.tensors[0], images.reshape(-1, 3, 1024))


def test_npcifar10_rows_then_seeded_per_sample_noise(tmp_path, no_network):
    fake_cifar(tmp_path)
    images = get_dataset("cifar10", data_root=tmp_path, augment=False).test.tensors[0]
    data = get_dataset("npcifar10", data_root=tmp_path, seed=1)
    assert data.task.input_shape == (96, 1000) and data.task.causal and data.info["noise"] == "per-sample"
    x, y = stacked(data.test)
    assert x.shape == (N_CIFAR[1], 96, 1000) and x.dtype == torch.float32
    # step t = image row t; feature c * 32 + w = channel c, column w
    torch.testing.assert_close(x[:, :, :32], images.transpose(2, 3).reshape(-1, 96, 32))
    noise = x[:, :, 32:]
    assert abs(noise.mean()) < 0.05 and abs(noise.std() - 1) < 0.05
    assert not torch.allclose(noise[0], noise[1])  # per sample
    # the same sample gets the same noise in any batch, order or call
    x_rev, _ = data.test.batch(list(range(N_CIFAR[1]))[::-1])
    torch.testing.assert_close(x_rev.flip(0), x)
    again, _ = stacked(get_dataset("npcifar10", data_root=tmp_path, seed=1).test)
    torch.testing.assert_close(again, x)
    other, _ = stacked(get_dataset("npcifar10", data_root=tmp_path, seed=2).test)
    assert not torch.allclose(other[:, :, 32:], noise)
    # validation samples are carved from train and keep their training noise
    assert len(data.train) == 45 and len(data.val) == 5
    xv, _ = stacked(data.val)
    xt_all, _ = data.train.dataset.batch(data.val.indices)
    torch.testing.assert_close(xv, xt_all)

    shared = get_dataset("npcifar10", data_root=tmp_path, seed=1, shared_noise=True)
    xs, _ = stacked(shared.test)
    xtr, _ = stacked(shared.train)
    assert torch.equal(xs[0, :, 32:], xs[-1, :, 32:]) and torch.equal(xs[0, :, 32:], xtr[0, :, 32:])
    assert no_network == []


# -- STL-10, ImageNet-32 -------------------------------------------------------------------
def test_stl10_reads_column_major_binaries(tmp_path, no_network):
    raw = fake_stl10(tmp_path)
    data = get_dataset("stl10", data_root=tmp_path, norm="train")
    assert data.task.input_shape == (3, 96, 96) and data.augment is None
    assert (len(data.train), len(data.val), len(data.test)) == (18, 2, N_STL[1])
    x, y = stacked(data.test)
    assert x.dtype == torch.float32 and y.tolist() == (raw["test"][1].astype(int) - 1).tolist()
    mean, std = torch.tensor(data.info["norm_mean"]), torch.tensor(data.info["norm_std"])
    expected = (torch.tensor(raw["test"][0]).float() / 255 - mean.view(3, 1, 1)) / std.view(3, 1, 1)
    torch.testing.assert_close(x, expected, atol=1e-4, rtol=1e-4)  # orientation: not transposed
    small = get_dataset("stl10", data_root=tmp_path, resolution=32, augment=True)
    xs, _ = stacked(small.test)
    assert xs.shape == (N_STL[1], 3, 32, 32) and small.augment.pad == 4
    assert no_network == []


def test_imagenet32_npz_batches_in_subfolders(tmp_path):
    raw = fake_imagenet32(tmp_path)
    data = get_dataset("imagenet32", data_root=tmp_path, val_fraction=0.25)
    assert data.task.input_shape == (3, 32, 32) and data.task.num_classes == 1000
    assert (len(data.train), len(data.val), len(data.test)) == (30, 10, N_IMNET[1])
    x, y = stacked(data.test)
    assert y.tolist() == (raw["val_data"][1] - 1).tolist() and x.dtype == torch.float32
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    torch.testing.assert_close(x, (torch.tensor(raw["val_data"][0]).view(-1, 3, 32, 32).float() / 255 - mean) / std)
    small = get_dataset("imagenet32", data_root=tmp_path, resolution=16)
    assert stacked(small.test)[0].shape == (N_IMNET[1], 3, 16, 16)


# -- normalisation from the training part only (issue 19) -----------------------------------------------
def _train_part_stats(data, dims=(0, 2, 3)):
    """Per-channel mean and std of what the model sees for the training part only."""
    x, _ = stacked(data.train)
    return x.double().mean(dims), x.double().std(dims, unbiased=False)


@pytest.mark.parametrize("name, options", [
    ("cifar10", {"norm": "train", "augment": False}), ("cifar100", {"augment": False}), ("stl10", {}),
    ("stl10", {"norm": "train", "resolution": 32}), ("imagenet32", {"norm": "train"}),
])  # fmt: skip
def test_image_normalisation_sees_only_the_training_part(tmp_path, name, options):
    """The training part is standardised exactly (mean 0, std 1 per channel at the native resolution), so no
    validation image informed the statistics; validation and test are normalised with the same ones."""
    {"cifar10": fake_cifar, "cifar100": lambda r: fake_cifar(r, classes=100), "stl10": fake_stl10,
     "imagenet32": fake_imagenet32}[name](tmp_path)  # fmt: skip
    data = get_dataset(name, data_root=tmp_path, val_fraction=0.3, **options)
    mean, std = _train_part_stats(data)
    if "resolution" not in options:
        assert mean.abs().max() < 1e-4 and (std - 1).abs().max() < 1e-4, (mean, std)
    fitted = data.info["standardised"]
    assert data.info["norm_mean"] == [round(m, 6) for m in fitted["mean"]]
    # the validation part, normalised with the training part's statistics, is not standardised itself
    xv, _ = stacked(data.val)
    assert xv.double().mean((0, 2, 3)).abs().max() > 1e-3
    # the same seed gives the same statistics; another seed carves another training part
    other = get_dataset(name, data_root=tmp_path, val_fraction=0.3, seed=1, **options)
    assert other.info["norm_mean"] != data.info["norm_mean"]


def test_sequence_cifar_normalisation_sees_only_the_training_part(tmp_path):
    fake_cifar(tmp_path)
    seq = get_dataset("scifar10", data_root=tmp_path, norm="train", val_fraction=0.3)
    mean, std = _train_part_stats(seq, dims=(0, 2))
    assert mean.abs().max() < 1e-4 and (std - 1).abs().max() < 1e-3
    padded = get_dataset("npcifar10", data_root=tmp_path, norm="train", val_fraction=0.3)
    x, _ = stacked(padded.train)
    rows = x[:, :, :32].reshape(len(x), 3, 32, 32).double()  # features c * 32 + w
    assert rows.mean((0, 2, 3)).abs().max() < 1e-4 and (rows.std((0, 2, 3)) - 1).abs().max() < 1e-2


# -- Speech Commands -----------------------------------------------------------------------
def test_speech_commands_raw_and_mfcc(tmp_path, no_network):
    clips = fake_speech_commands(tmp_path)
    raw = get_dataset("sc_raw", data_root=tmp_path)
    n = 10 * CLIPS_PER_WORD  # short clips and other words are dropped
    assert (len(raw.train), len(raw.val), len(raw.test)) == (70, 15, 15)
    assert raw.task.input_shape == (1, 16000) and raw.task.causal and raw.task.num_classes == 10
    x, y = stacked(raw.train)
    assert x.dtype == torch.float32 and x.shape == (70, 1, 16000)
    assert torch.bincount(y, minlength=10).tolist() == [7] * 10  # stratified
    assert abs(x.mean()) < 0.01 and abs(x.std() - 1) < 0.01  # training statistics
    all_y = torch.cat([y, stacked(raw.val)[1], stacked(raw.test)[1]])
    assert sorted(all_y.tolist()) == sorted(i for i in range(10) for _ in range(CLIPS_PER_WORD)) and len(all_y) == n
    again = get_dataset("sc_raw", data_root=tmp_path, seed=5)  # the split does not follow the run seed
    torch.testing.assert_close(stacked(again.test)[0], stacked(raw.test)[0])

    mfcc = get_dataset("sc_mfcc", data_root=tmp_path)
    assert mfcc.task.input_shape == (20, 161)
    xm, ym = mfcc.train.tensors
    assert xm.shape == (70, 20, 161) and torch.equal(ym, y)
    assert xm.mean((0, 2)).abs().max() < 1e-4  # per coefficient

    half = get_dataset("sc_raw", data_root=tmp_path, sr=2)
    assert half.task.size == 8000 and stacked(half.test)[0].shape == (15, 1, 8000)
    assert get_dataset("sc_mfcc", data_root=tmp_path, sr=2).task.size == 81
    assert len(clips) > n and no_network == []


def test_speech_commands_official_lists(tmp_path):
    fake_speech_commands(tmp_path)
    data = get_dataset("sc_raw", data_root=tmp_path, split="official")
    # lists name 10 val and 20 test clips of the keywords (a short clip and another word are ignored)
    assert (len(data.train), len(data.val), len(data.test)) == (70, 10, 20)
    assert stacked(data.val)[1].tolist() == list(range(10))


# -- errors --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", REAL + ["imagenet32"])
def test_missing_root_is_one_clear_error_without_a_hang(tmp_path, name, no_network):
    root = tmp_path / "empty"
    start = time.perf_counter()
    with pytest.raises(UserError) as err:
        get_dataset(name, data_root=root)
    message = str(err.value)
    assert f"dataset {name!r}" in message and str(root) in message and "\n" not in message
    assert "download failed" in message or name == "imagenet32"
    assert time.perf_counter() - start < 10
    with pytest.raises(UserError, match="not found in"):  # without download: no connection at all
        no_network.clear()
        get_dataset(name, data_root=root, **({} if name == "imagenet32" else {"download": False}))
    assert no_network == []


def test_damaged_files_and_bad_options_are_user_errors(tmp_path):
    fake_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="cannot read .*test_batch"):
        get_dataset("cifar10", data_root=tmp_path)
    with pytest.raises(UserError, match="norm must be one of"):
        get_dataset("scifar10", data_root=tmp_path, norm="cifar")
    fake_mnist(tmp_path)
    with pytest.raises(UserError, match="resolution"):
        get_dataset("mnist", data_root=tmp_path, resolution=2)
    with pytest.raises(UserError, match="download must be true or false"):
        get_dataset("mnist", data_root=tmp_path, download="maybe")
    assert get_dataset("mnist", data_root=tmp_path, download="false").task.size == (28, 28)
    fake_speech_commands(tmp_path)
    with pytest.raises(UserError, match="split must be one of"):
        get_dataset("sc_raw", data_root=tmp_path, split="random")


def test_cli_missing_data_exits_2_with_one_line(tmp_path):
    result = run_cli(
        "--datasets", "cifar10", "--methods", "conv", "--data-root", str(tmp_path / "empty"),
        "--set", "data.download=false", "--out", str(tmp_path / "out"), "--quiet", "--no-report", timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "dataset 'cifar10'" in result.stderr and str(tmp_path / "empty") in result.stderr
    assert "Traceback" not in result.stderr


def test_speech_commands_raw_with_dropped_steps(tmp_path):
    fake_speech_commands(tmp_path)
    plain = get_dataset("sc_raw", data_root=tmp_path, sr=4)
    data = get_dataset("sc_raw", data_root=tmp_path, sr=4, drop_rate=0.3)
    assert data.task.input_shape == (2, 4000) and data.info["dropped_steps"] == 1200
    for split in ("train", "val", "test"):
        x, y = stacked(getattr(data, split))
        px, py = stacked(getattr(plain, split))
        assert torch.equal(y, py) and x.shape == (len(y), 2, 4000)
        mask = x[:, 1]
        assert ((mask == 0).sum(1) == 1200).all() and (x[:, 0][mask == 0] == 0).all()
        assert np.corrcoef(x[:, 0][mask == 1].numpy(), px[:, 0][mask == 1].numpy())[0, 1] > 0.9999
    x = stacked(data.train)[0]
    seen = x[:, 0][x[:, 1] == 1]
    assert abs(seen.mean()) < 1e-3 and abs(seen.std() - 1) < 1e-3  # statistics of the observed training samples
    again = get_dataset("sc_raw", data_root=tmp_path, sr=4, drop_rate=0.3, seed=7)
    assert torch.equal(stacked(again.test)[0], stacked(data.test)[0])  # the same positions whatever the run seed


# -- CharacterTrajectories (UEA .ts) -------------------------------------------------------------
CT_LETTERS = list("abcdeghlmnopqrsuvwyz")


def write_ts(path, cases, labels, header=True):
    """A `.ts` file in the UEA/sktime format: comments, @ tags, @data, then channel:channel:...:label lines."""
    lines = ["# fake CharacterTrajectories for the tests", "@problemName CharacterTrajectories",
             "@timeStamps false", "@missing false", "@univariate false", "@dimensions 3", "@equalLength false",
             f"@classLabel true {' '.join(CT_LETTERS)}", "@data"] if header else ["@data"]  # fmt: skip
    for case, label in zip(cases, labels):
        lines.append(":".join(",".join(f"{v:.6g}" for v in channel) for channel in case) + f":{label}")
    path.write_text("\n".join(lines) + "\n")


def fake_char_trajectories(root, per_class=(5, 5)):
    """TRAIN and TEST files with `per_class` cases of each letter, lengths 20-30; the longest case is 30."""
    folder = root / "CharacterTrajectories"
    folder.mkdir(parents=True)
    cases = {}
    for part, n in zip(("TRAIN", "TEST"), per_class):
        labels = [CT_LETTERS[(i * 7 + (part == "TEST")) % 20] for i in range(20 * n)]  # first appearance: not a-z
        xs = [RNG.standard_normal((3, int(RNG.integers(20, 30)))) for _ in labels]
        if part == "TEST":
            xs[0] = RNG.standard_normal((3, 30))
        write_ts(folder / f"CharacterTrajectories_{part}.ts", xs, labels)
        cases[part] = (xs, labels)
    return cases


def test_char_trajectories_reads_ts_pads_renumbers_and_resplits(tmp_path, no_network):
    cases = fake_char_trajectories(tmp_path)
    data = get_dataset("char_trajectories", data_root=tmp_path)
    assert (len(data.train), len(data.val), len(data.test)) == (140, 30, 30)
    assert data.task.input_shape == (3, 30) and data.task.num_classes == 20 and data.task.causal
    xs, labels = cases["TRAIN"][0] + cases["TEST"][0], cases["TRAIN"][1] + cases["TEST"][1]
    first_seen = list(dict.fromkeys(labels))
    assert data.info["classes"] == first_seen and first_seen[:3] == ["a", "l", "s"]
    for part in (data.train, data.val, data.test):  # stratified: every letter in every split, 7 / 1.5 / 1.5 each
        assert torch.bincount(part.tensors[1], minlength=20).min() >= 1
    assert torch.bincount(data.train.tensors[1], minlength=20).tolist() == [7] * 20
    x = data.train.tensors[0]
    torch.testing.assert_close(x.mean((0, 2)), torch.zeros(3), atol=1e-5, rtol=0)  # per channel, training part
    # undo the normalisation and find every case, padded with its last value, in exactly one split
    stats = data.info["standardised"]
    mean, std = torch.tensor(stats["mean"]).view(1, 3, 1), torch.tensor(stats["std"]).view(1, 3, 1)
    found = torch.cat([p.tensors[0] for p in (data.train, data.val, data.test)]) * std + mean
    found_y = torch.cat([p.tensors[1] for p in (data.train, data.val, data.test)])
    assert len(found) == len(xs)
    for case, label in zip(xs, labels):
        padded = torch.tensor(np.concatenate([case, np.repeat(case[:, -1:], 30 - case.shape[1], 1)], 1)).float()
        hit = (found - padded).abs().amax((1, 2)) < 1e-4
        assert hit.sum() == 1 and found_y[hit].item() == first_seen.index(label)
    again = get_dataset("char_trajectories", data_root=tmp_path, seed=4)  # the split does not follow the run seed
    assert torch.equal(again.test.tensors[1], data.test.tensors[1])
    torch.testing.assert_close(again.test.tensors[0], data.test.tensors[0])
    assert no_network == []


def test_char_trajectories_rates_and_dropped_steps(tmp_path):
    fake_char_trajectories(tmp_path)
    plain = get_dataset("char_trajectories", data_root=tmp_path)
    half = get_dataset("char_trajectories", data_root=tmp_path, sr=2)
    assert half.task.size == 15 and torch.equal(half.test.tensors[1], plain.test.tensors[1])
    corr = np.corrcoef(half.test.tensors[0].flatten().numpy(), plain.test.tensors[0][..., ::2].flatten().numpy())
    assert corr[0, 1] > 0.99  # every other step of the same cases (normalised with their own statistics)
    dropped = get_dataset("char_trajectories", data_root=tmp_path, drop_rate=0.5)
    assert dropped.task.input_shape == (4, 30) and dropped.info["dropped_steps"] == 15
    for split in ("train", "val", "test"):
        x = getattr(dropped, split).tensors[0]
        assert ((x[:, 3] == 0).sum(1) == 15).all() and (
            x[:, :3][(x[:, 3] == 0).unsqueeze(1).expand(-1, 3, -1)] == 0
        ).all()


def test_char_trajectories_missing_and_damaged_files(tmp_path, no_network):
    with pytest.raises(UserError, match="CharacterTrajectories_TRAIN.ts.*Multivariate_ts") as err:
        get_dataset("char_trajectories", data_root=tmp_path)
    assert "\n" not in str(err.value) and no_network == []
    fake_char_trajectories(tmp_path)
    path = tmp_path / "CharacterTrajectories" / "CharacterTrajectories_TEST.ts"
    good = path.read_text()
    path.write_text(good.replace(":a\n", ":zz\n", 1))  # a class the header does not declare
    with pytest.raises(UserError, match="cannot read .*_TEST.ts.*not among the declared"):
        get_dataset("char_trajectories", data_root=tmp_path)
    path.write_text(good.replace("@data\n", "@data\n1,2:3:a\n", 1))  # channels of different lengths
    with pytest.raises(UserError, match="different lengths"):
        get_dataset("char_trajectories", data_root=tmp_path)
    path.write_text(good)
    with pytest.raises(UserError, match="sr"):
        get_dataset("char_trajectories", data_root=tmp_path, sr=0)
