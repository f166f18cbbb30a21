"""CCNN (Knigge, Romero et al., ICLR 2023): the Table 1 commands of david-knigge/ccnn experiments/README.md
(methods.md, Part 1, C.3), one suite per size, and their tables beside results/reference/ccnn.csv.

AdamW, linear warm-up then cosine to 0; the repo's "weight decay" is a norm penalty in the training step
(methods.md A.9), here the protocol's decoupled decay. Gradient accumulation (STL-10) becomes the effective
batch; the distributed SC MFCC 6,380 run keeps its per-GPU batch of 10."""

from __future__ import annotations

from bench.papers import PaperTable, Row
from bench.run.suite import Suite

CCNN_4_140 = {"blocks": 4, "width": 140, "kernel_hidden": 32}
CCNN_6_380 = {"blocks": 6, "width": 380, "kernel_hidden": 64}


def ccnn_run(omega_0: float, dropout: float, lr: float, wd: float, batch: int, epochs: int, warmup: int = 10,
             **model) -> tuple[dict, dict]:  # fmt: skip
    """(model hparams, train settings) of one CCNN command."""
    train = {"lr": lr, "weight_decay": wd, "batch_size": batch, "epochs": epochs, "warmup_epochs": warmup}
    return {"omega_0": omega_0, "dropout": dropout, **model}, train


CCNN_RUNS = {  # dataset: (CCNN-4,140, CCNN-6,380)
    "smnist": (ccnn_run(2976.4910261630357, 0.1, 0.01, 1e-6, 100, 210), ccnn_run(2976.4910261630357, 0.1, 0.01, 1e-6, 100, 210)),
    "pmnist": (ccnn_run(2985.6332826938724, 0.0, 0.02, 0.0, 100, 210, dropout_in=0.2),
               ccnn_run(2985.633, 0.0, 0.02, 0.0, 100, 210, dropout_in=0.2)),
    "scifar10": (ccnn_run(2386.49, 0.0, 0.02, 0.0, 50, 210), ccnn_run(4005.146, 0.25, 0.01, 0.0, 50, 210)),
    "sc_mfcc": (ccnn_run(750.1822972936538, 0.2, 0.02, 1e-6, 100, 110), ccnn_run(1295.61, 0.2, 0.02, 1e-6, 10, 160)),
    "sc_raw": (ccnn_run(1295.612417154228, 0.2, 0.02, 1e-6, 20, 160), ccnn_run(1295.61, 0.2, 0.02, 1e-6, 40, 160)),
    "cifar10": (ccnn_run(4231.568793085858, 0.1, 0.02, 1e-4, 64, 350, warmup=5, kernel_size=33, mask_init=0.75),
                ccnn_run(976.781, 0.15, 0.01, 0.0, 50, 210, kernel_size=33)),
    "cifar100": (ccnn_run(3521.5468260391735, 0.1, 0.02, 1e-4, 50, 210, kernel_size=33),
                 ccnn_run(679.142, 0.2, 0.02, 0.0, 50, 210, kernel_size=31)),
    "stl10": (ccnn_run(954.281, 0.1, 0.02, 0.0, 256, 210, kernel_size=33),
              ccnn_run(954.281, 0.1, 0.01, 0.0, 96, 210, kernel_size=31)),
}  # fmt: skip
COLUMNS = {"smnist": "sMNIST", "pmnist": "pMNIST", "scifar10": "sCIFAR10", "sc_mfcc": "SC MFCC", "sc_raw": "SC raw",
           "cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "stl10": "STL-10"}  # fmt: skip


def ccnn_suite(name: str, size: dict, which: int) -> Suite:
    return Suite(
        name=name,
        description=f"CCNN Table 1, CCNN-{size['blocks']},{size['width']}: sMNIST, pMNIST, sCIFAR10, Speech Commands MFCC and raw, CIFAR-10, "
        "CIFAR-100, STL-10 (GPU, downloads)",
        methods=("ccnn",),
        datasets=tuple(CCNN_RUNS),
        seeds=(0, 1, 2),
        train={"min_lr_factor": 0.0},
        train_by_dataset={d: runs[which][1] for d, runs in CCNN_RUNS.items()},
        model_by_dataset={d: {**size, **runs[which][0]} for d, runs in CCNN_RUNS.items()},
        data={"cifar100": {"augment": False}, "stl10": {"augment": True}},
        tags=(f"suite:{name}",),
    )


SUITES = (ccnn_suite("ccnn", CCNN_4_140, 0), ccnn_suite("ccnn-6380", CCNN_6_380, 1))
TABLES = (
    *(PaperTable(key, f"CCNN Table 1, {label} (published numbers not yet verified here)", suite, COLUMNS,
                 (Row(label, "ccnn", size),))
      for key, suite, label, size in (("ccnn-t1", "ccnn", "CCNN-4,140", CCNN_4_140),
                                      ("ccnn-t1-6380", "ccnn-6380", "CCNN-6,380", CCNN_6_380))),
    PaperTable("ccnn-pr1", "CCNN-4,140 on CIFAR-10 as in david-knigge/ccnn PR #1 (Table 1's command)", "ccnn",
               {"cifar10": "CIFAR-10"}, (Row("CCNN-4,140", "ccnn", CCNN_4_140),)),
)  # fmt: skip
