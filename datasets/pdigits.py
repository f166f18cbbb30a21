"""`pdigits`: permuted sequential digits, pMNIST's small embedded stand-in (64 steps, causal).

The 8 x 8 digits read pixel by pixel, with one fixed permutation of the 64 steps drawn from
the run seed: the same for train, val and test, and stored in the run's info.
"""

from __future__ import annotations

from datasets import register_dataset
from datasets.base import Loaded
from datasets.digits import digit_images
from datasets.splits import seeded_permutation
from datasets.tensors import tensor_dataset

PERMUTATION_SALT = 64  # keeps the permutation's random stream apart from the validation carving's


@register_dataset(
    "pdigits",
    description="permuted sequential digits: sdigits with one fixed pixel permutation from the run seed (causal)",
    shape=(1, 64),
    classes=10,
    causal=True,
)
def pdigits(*, seed, data_root):
    xtr, ytr, xte, yte = digit_images()
    perm = seeded_permutation(64, seed, salt=PERMUTATION_SALT)
    xtr, xte = (x.reshape(len(x), 1, 64)[..., perm] for x in (xtr, xte))
    info = {"permutation_seed": seed, "permutation": perm.tolist()}
    return Loaded(tensor_dataset(xtr, ytr), tensor_dataset(xte, yte), info=info, standardise=(0, 1, 2))
