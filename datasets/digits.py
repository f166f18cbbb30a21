"""scikit-learn's bundled 8x8 handwritten digits, as images (`digits`) and as 64-step sequences (`sdigits`)."""

from __future__ import annotations

from datasets import register_dataset
from datasets.base import Loaded
from datasets.tensors import fixed_split, tensor_dataset


def digit_images():
    """(train_x, train_y, test_x, test_y) as (N, 1, 8, 8) tensors in [0, 1]; get_dataset standardises them."""
    from sklearn.datasets import load_digits  # lazy: scikit-learn adds 1 s to `run_all.py list`

    bunch = load_digits()
    x = bunch.images[:, None].astype("float32") / 16.0
    tr, te = fixed_split(len(x), 0.2)
    train, test = tensor_dataset(x[tr], bunch.target[tr]), tensor_dataset(x[te], bunch.target[te])
    (xtr, ytr), (xte, yte) = train.tensors, test.tensors
    return xtr, ytr, xte, yte


@register_dataset(
    "digits",
    description="scikit-learn 8x8 digits as images (1,797 samples, bundled)",
    shape=(1, 8, 8),
    classes=10,
)
def digits(*, seed, data_root):
    xtr, ytr, xte, yte = digit_images()
    return Loaded(tensor_dataset(xtr, ytr), tensor_dataset(xte, yte), standardise=(0, 1, 2, 3))


@register_dataset(
    "sdigits",
    description="sequential digits: the 8x8 digits read pixel by pixel (64 steps, causal)",
    shape=(1, 64),
    classes=10,
    causal=True,
)
def sdigits(*, seed, data_root):
    xtr, ytr, xte, yte = digit_images()
    flat = [t.reshape(len(t), 1, 64) for t in (xtr, xte)]
    return Loaded(tensor_dataset(flat[0], ytr), tensor_dataset(flat[1], yte), standardise=(0, 1, 2))
