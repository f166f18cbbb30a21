"""Embedded datasets (shapes, pdigits, mnist1d at other lengths) and the batch augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench.base import UserError
from bench.run.batches import batches
from datasets import get_dataset, get_entry
from datasets.arrays import ArrayDataset
from datasets.augment import CropFlip
from datasets.shapes import CLASSES, make_split

SMALL = {"n_train": 240, "n_test": 60}


def test_shapes_splits_labels_and_determinism():
    data = get_dataset("shapes", seed=0, resolution=16, **SMALL)
    assert data.task.input_shape == (3, 16, 16) and data.task.num_classes == len(CLASSES)
    assert (len(data.train), len(data.val), len(data.test)) == (216, 24, 60)
    x, y = data.test.tensors
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and 0 <= y.min() and y.max() < len(CLASSES)
    assert torch.bincount(torch.cat([data.train.tensors[1], data.val.tensors[1]])).tolist() == [40] * 6
    again = get_dataset("shapes", seed=5, resolution=16, **SMALL)  # the scenes follow data_seed, not the run seed
    assert torch.equal(again.test.tensors[1], y)  # (the normalisation follows the seed's training part)
    assert np.corrcoef(again.test.tensors[0].flatten().numpy(), x.flatten().numpy())[0, 1] > 0.9999
    other = get_dataset("shapes", seed=0, resolution=16, data_seed=1, **SMALL)
    assert not torch.equal(other.test.tensors[0], x)
    bigger = get_dataset("shapes", seed=0, resolution=16, n_train=480, n_test=60)
    assert torch.equal(bigger.test.tensors[1], y)  # the same test scenes, standardised with other statistics
    assert np.corrcoef(bigger.test.tensors[0].flatten().numpy(), x.flatten().numpy())[0, 1] > 0.999


def test_shapes_are_the_same_scenes_at_16_and_32_pixels():
    x16, y16 = make_split("test", 60, 16, 0.0, 0)
    x32, y32 = make_split("test", 60, 32, 0.0, 0)
    assert torch.equal(y16, y32)
    assert (F.avg_pool2d(x32, 2) - x16).abs().max() < 1e-4  # both average the same sub-sample grid
    d16 = get_dataset("shapes", resolution=16, **SMALL)
    d32 = get_dataset("shapes", resolution=32, **SMALL)
    assert d32.task.size == (32, 32) and torch.equal(d16.test.tensors[1], d32.test.tensors[1])
    pooled = F.avg_pool2d(d32.test.tensors[0], 2).flatten()
    assert np.corrcoef(pooled.numpy(), d16.test.tensors[0].flatten().numpy())[0, 1] > 0.95  # the pixel noise differs


def test_shapes_classes_differ_in_what_they_draw():
    """A nearest-class-mean classifier on the shape masks alone must beat chance by far."""
    from datasets.shapes import inside

    coords = torch.linspace(-1, 1, 33)
    gy, gx = torch.meshgrid(coords, coords, indexing="ij")
    masks = torch.stack([inside(kind, gx.reshape(1, -1), gy.reshape(1, -1)).float() for kind in CLASSES])
    areas = masks.mean((1, 2))
    assert (areas > 0.1).all() and (areas < 0.7).all()
    assert torch.cdist(masks[:, 0], masks[:, 0]).add(torch.eye(len(CLASSES)) * 1e9).min() > 3  # all distinct


def test_shapes_bad_options():
    with pytest.raises(UserError, match="resolution"):
        get_dataset("shapes", resolution=2)
    with pytest.raises(UserError, match="n_train"):
        get_dataset("shapes", n_train=5)


def test_pdigits_is_sdigits_permuted_the_same_way_in_every_split():
    plain = get_dataset("sdigits", seed=2)
    perm_data = get_dataset("pdigits", seed=2)
    perm = torch.tensor(perm_data.info["permutation"])
    assert sorted(perm.tolist()) == list(range(64)) and not torch.equal(perm, torch.arange(64))
    assert perm_data.task.causal and perm_data.task.input_shape == (1, 64)
    for split in ("train", "val", "test"):
        torch.testing.assert_close(getattr(perm_data, split).tensors[0], getattr(plain, split).tensors[0][..., perm])
    assert get_dataset("pdigits", seed=2).info["permutation"] == perm.tolist()
    assert get_dataset("pdigits", seed=3).info["permutation"] != perm.tolist()
    assert get_entry("pdigits").card.causal


def test_mnist1d_length_option_resamples_the_same_signals():
    """Sequence-resolution transfer uses mnist1d's `length`: the same samples, resampled."""
    d40 = get_dataset("mnist1d", length=40, num_samples=500)
    d80 = get_dataset("mnist1d", length=80, num_samples=500)
    assert d80.task.size == 80 and torch.equal(d40.test.tensors[1], d80.test.tensors[1])
    x40, x80 = d40.test.tensors[0], d80.test.tensors[0]
    down = F.interpolate(x80, size=40, mode="linear", align_corners=True)
    assert np.corrcoef(down.flatten().numpy(), x40.flatten().numpy())[0, 1] > 0.95


def test_mnist1d_shuffled_is_mnist1d_with_one_fixed_permutation():
    plain = get_dataset("mnist1d", seed=1, num_samples=500)
    shuffled = get_dataset("mnist1d_shuffled", seed=1, num_samples=500)
    perm = shuffled.info["permutation"]
    assert sorted(perm) == list(range(40)) and perm != list(range(40))
    for split in ("train", "val", "test"):  # one permutation in every split (scalar statistics: exactly equal)
        a, b = getattr(plain, split).tensors, getattr(shuffled, split).tensors
        torch.testing.assert_close(b[0], a[0][..., perm])
        assert torch.equal(a[1], b[1])
    assert get_dataset("mnist1d_shuffled", seed=4, num_samples=500).info["permutation"] == perm  # not the run seed's


def test_mnist1d_is_generated_once_then_read_from_the_disk_cache(tmp_path, monkeypatch):
    import datasets.mnist1d as m

    first = get_dataset("mnist1d", num_samples=200, data_root=tmp_path)
    assert len(list((tmp_path / "mnist1d").glob("*.npz"))) == 1
    m.signals.cache_clear()  # a new process: nothing in memory

    def no_generator(*args):
        raise AssertionError("generated again")

    monkeypatch.setattr(m, "_generate", no_generator)
    again = get_dataset("mnist1d", num_samples=200, data_root=tmp_path)
    assert torch.equal(first.test.tensors[0], again.test.tensors[0])
    m.signals.cache_clear()
    with pytest.raises(AssertionError, match="generated again"):  # other arguments are another file
        get_dataset("mnist1d", num_samples=300, data_root=tmp_path)


@pytest.mark.parametrize(
    "name, options, dims",
    [("mnist1d", {"num_samples": 500}, (0, 2)), ("digits", {}, (0, 1, 2, 3)), ("sdigits", {}, (0, 1, 2)),
     ("shapes", SMALL, (0, 2, 3))],
)  # fmt: skip
def test_normalisation_statistics_come_from_the_training_part_only(name, options, dims):
    data = get_dataset(name, seed=3, **options)
    train, val = data.train.tensors[0], data.val.tensors[0]
    torch.testing.assert_close(train.mean(dims), torch.zeros_like(train.mean(dims)), atol=1e-5, rtol=0)
    torch.testing.assert_close(train.std(dims), torch.ones_like(train.std(dims)), atol=1e-4, rtol=0)
    assert (val.mean(dims).abs() > 1e-4).any()  # the validation samples did not enter the statistics
    assert data.info["standardised"]["dims"] == list(dims)


def test_cross_resolution_target_keeps_the_source_normalisation():
    from bench.run.config import RunConfig
    from bench.run.crossres import load_at

    source = get_dataset("shapes", seed=0, resolution=16, **SMALL)
    cfg = RunConfig("conv", "shapes", 0, data={"resolution": 16, **SMALL})
    target = load_at(cfg, 32, statistics=source.info["standardised"])
    own = load_at(cfg, 32)
    assert target.info["standardised"] == source.info["standardised"] != own.info["standardised"]
    torch.testing.assert_close(target.test.tensors[0].std(), own.test.tensors[0].std(), rtol=0.1, atol=0)


# -- augmentation --------------------------------------------------------------------------
def test_cropflip_identity_flip_and_crop():
    x = torch.randn(6, 3, 8, 8)
    y = torch.arange(6)
    same, y_out = CropFlip(0, [0.0] * 3, flip=False)(x, y, torch.Generator().manual_seed(0))
    assert torch.equal(same, x) and y_out is y

    out, _ = CropFlip(2, [-5.0, -6.0, -7.0])(x, y, torch.Generator().manual_seed(1))
    fill = torch.tensor([-5.0, -6.0, -7.0]).view(3, 1, 1)
    padded = F.pad(x - fill, (2, 2, 2, 2)) + fill.unsqueeze(0)
    for i in range(6):  # every output is one of the 5 x 5 crops of the padded image, maybe mirrored
        crops = [padded[i, :, t : t + 8, s : s + 8] for t in range(5) for s in range(5)]
        candidates = crops + [c.flip(-1) for c in crops]
        assert any(torch.equal(out[i], c) for c in candidates)
    again, _ = CropFlip(2, [-5.0, -6.0, -7.0])(x, y, torch.Generator().manual_seed(1))
    assert torch.equal(again, out)  # follows the generator only


def test_cropflip_draws_every_offset_and_both_orientations():
    x = torch.arange(16.0).view(1, 1, 4, 4).expand(4000, 1, 4, 4)
    out, _ = CropFlip(1, [0.0])(x, torch.zeros(4000), torch.Generator().manual_seed(0))
    flipped = (out[:, 0, 1, 2] < out[:, 0, 1, 1]).float().mean()  # a mirrored row decreases
    assert 0.45 < flipped < 0.55
    centre = (out == x).all(-1).all(-1).all(-1).float().mean()
    assert 0.03 < centre < 0.09  # the unshifted, unmirrored crop: 1/9 * 1/2


def test_array_dataset_batches_through_dataloader_and_subset():
    store = torch.arange(20, dtype=torch.int16).view(10, 1, 2)
    calls = []

    def to_float(chunk, index):
        calls.append(len(index))
        return chunk.float() * 2

    ds = ArrayDataset(store, torch.arange(10), to_float)
    sub = torch.utils.data.Subset(ds, [1, 3, 5, 7])
    xs, ys = zip(*batches(sub, 3, shuffle=False, generator=None, device="cpu"))
    assert torch.equal(torch.cat(ys), torch.tensor([1, 3, 5, 7]))
    assert torch.equal(torch.cat(xs), store[[1, 3, 5, 7]].float() * 2)
    assert calls == [3, 1]  # one conversion per batch, not per sample


# -- missing data (CKConv's drop_rate) -------------------------------------------------------
@pytest.mark.parametrize("rate", [0.3, 0.5, 0.7])
def test_mnist1d_drop_rate_zeroes_and_marks_the_same_fraction_in_every_split(rate):
    plain = get_dataset("mnist1d", seed=1, num_samples=500)
    data = get_dataset("mnist1d", seed=1, num_samples=500, drop_rate=rate)
    assert data.task.input_shape == (2, 40) and data.info["dropped_steps"] == int(40 * rate)
    for split in ("train", "val", "test"):
        x, y = getattr(data, split).tensors
        mask = x[:, 1]
        assert set(mask.unique().tolist()) == {0.0, 1.0}
        assert ((mask == 0).sum(1) == int(40 * rate)).all()  # exactly int(L * rate) steps of every example
        assert (x[:, 0][mask == 0] == 0).all()  # dropped: zero; observed: the plain signal, standardised alike
        assert torch.equal(y, getattr(plain, split).tensors[1])
        seen = mask == 1
        ref = getattr(plain, split).tensors[0][:, 0][seen]
        assert np.corrcoef(x[:, 0][seen].numpy(), ref.numpy())[0, 1] > 0.9999
    x = data.train.tensors[0]
    observed = x[:, 0][x[:, 1] == 1]
    assert abs(observed.mean()) < 1e-5 and abs(observed.std() - 1) < 1e-3  # statistics of observed training steps
    assert data.info["standardised"]["observed_only"]


def test_drop_positions_follow_the_drop_seed_not_the_run_seed():
    a = get_dataset("mnist1d_missing", seed=0, num_samples=500)
    b = get_dataset("mnist1d_missing", seed=3, num_samples=500)
    c = get_dataset("mnist1d_missing", seed=0, num_samples=500, drop_seed=1)
    assert a.task.input_shape == (2, 40) and a.info["drop_rate"] == 0.5
    assert torch.equal(a.test.tensors[0][:, 1], b.test.tensors[0][:, 1])  # fixed per example whatever the run seed
    assert not torch.equal(a.test.tensors[0][:, 1], c.test.tensors[0][:, 1])
    masks = a.test.tensors[0][:, 1]
    assert len({tuple(m.tolist()) for m in masks}) > 0.9 * len(masks)  # each example its own positions
    assert (masks == 0).float().mean(0).min() > 0.3  # every position gets dropped somewhere
    from datasets.missing import observed_mask

    again = observed_mask([7, 3], 40, 0.5, "test")  # an example's positions do not depend on its neighbours
    assert torch.equal(again, observed_mask(torch.arange(10), 40, 0.5, "test")[[7, 3]])
    assert not torch.equal(again, observed_mask([7, 3], 40, 0.5, "train"))


def test_drop_rate_bad_values():
    for bad in (1.0, -0.1, "half", True):
        with pytest.raises(UserError, match="drop_rate"):
            get_dataset("mnist1d", num_samples=500, drop_rate=bad)
    with pytest.raises(UserError, match="drop_rate must be > 0"):
        get_dataset("mnist1d_missing", num_samples=500, drop_rate=0)
