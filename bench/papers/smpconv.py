"""SMPConv (Kim & Park, CVPR 2023): the runs of sangnekim/SMPConv smp/README.md as a suite, and its table beside
the README's numbers (results/reference/smpconv.csv).

FlexTCN-6 (h = 30) on sequences, FlexNet-7 (h = 24) on CIFAR-10, every conv an SMPConv with its small dense kernel;
Adam with weight decay 1e-5 (the repo's Adam adds it as L2 to the gradients of the weights, not of biases,
norms, points or radii; AdamW here), cosine to 1e-6 after 5 warm-up epochs (10 where given); the MNIST runs'
input dropout 0.1. Not reproduced: the repo's augmentations."""

from __future__ import annotations

from bench.papers import PaperTable, Row
from bench.papers.flexconv import FLEXNET7, adam
from bench.run.suite import Suite

SMP_BY_DIM = {
    1: {"arch": "flextcn6", "width": 30, "n_points": 30, "coord_std": 0.1, "small_kernel_size": 5},
    2: {**FLEXNET7, "n_points": 16, "coord_std": 0.05, "small_kernel_size": 3},
}
SMP_BY_DATASET = {  # radius, dropout, input dropout and the points' bias per run
    "smnist": {"radius": 0.002, "dropout": 0.0, "dropout_in": 0.1, "bias": False},
    "pmnist": {"radius": 0.002, "dropout": 0.0, "dropout_in": 0.1, "bias": False},
    "scifar10": {"radius": 0.002, "dropout": 0.0, "bias": True},
    "sc_mfcc": {"radius": 0.012, "dropout": 0.2, "bias": True},
    "sc_raw": {"radius": 0.0002, "dropout": 0.1, "bias": False},
    "cifar10": {"radius": 0.12, "dropout": 0.1, "bias": False},
}
SMP_TRAIN_BY_DATASET = {
    "smnist": adam(1e-4, weight_decay=1e-5, epochs=200, batch_size=64),
    "pmnist": adam(1e-4, weight_decay=1e-5, epochs=200, batch_size=64),
    "scifar10": adam(2e-4, weight_decay=1e-5, epochs=200, batch_size=64),
    "sc_mfcc": adam(2e-3, weight_decay=1e-5, epochs=300, batch_size=32),
    "sc_raw": adam(1e-3, weight_decay=1e-5, epochs=160, batch_size=32, warmup_epochs=10),
    "cifar10": adam(5e-3, weight_decay=1e-5, epochs=210, batch_size=64, warmup_epochs=10),
}

SUITES = (
    Suite(
        name="smpconv",
        description="SMPConv (README): sMNIST, pMNIST, sCIFAR10, Speech Commands MFCC and raw (FlexTCN-6), CIFAR-10 "
        "(FlexNet-7) (GPU, downloads)",
        methods=("smpconv",),
        datasets=tuple(SMP_BY_DATASET),
        seeds=(0, 1, 2),
        train={"warmup_epochs": 5},
        train_by_dataset=SMP_TRAIN_BY_DATASET,
        model_by_dim=SMP_BY_DIM,
        model_by_dataset=SMP_BY_DATASET,
        tags=("suite:smpconv",),
    ),
)

TABLES = (
    PaperTable("smpconv", "SMPConv (repository README): sequential and image classification", "smpconv",
               {"smnist": "sMNIST", "pmnist": "pMNIST", "scifar10": "sCIFAR10", "sc_mfcc": "SC MFCC",
                "sc_raw": "SC raw", "cifar10": "CIFAR-10"}, (Row("SMPConv", "smpconv"),)),
)  # fmt: skip
