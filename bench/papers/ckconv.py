"""CKConv (Romero et al., ICLR 2022): the CKCNN on sequences (also the FlexConv paper's sequence protocol), its
sampling-rate protocol offline, their tables and results/reference/ckconv.csv. Sources: dwromero/ckconv
runs/README.md (methods.md, Part 1, C.1), checked by tests/test_paper_settings.py."""

from __future__ import annotations

from bench.papers import CROSSRES_METRICS, PaperTable, Row
from bench.run.crossres import check_settings
from bench.run.suite import Suite
from bench.run.suites import CPU_MODELS, CPU_SIREN_LR, CPU_TRAIN

# -- sequences: the CKConv paper's protocol (dwromero/ckconv trainer.py), which the FlexConv repo's sequence
# test cases share (testcases/testcase_settings.txt): Adam 1e-3, no warm-up, a flat lr cut by
# ReduceLROnPlateau(mode="max", factor=1/5, patience=20; 15 for SC-MFCC) on the validation accuracy, a stop
# after 100 epochs without improvement, at most 200 epochs (300 for SC raw), batch 64 (32 for SC raw).
PLATEAU_FACTOR = 0.2  # --config.sched_decay_factor=5
STOP_AFTER = 100  # max_epochs_no_improvement
PLATEAU_CUTS = 100  # ReduceLROnPlateau has no limit; 300 epochs allow at most 18 cuts of patience 15


def plateau(patience: int) -> dict:
    """ReduceLROnPlateau(factor 1/5, `patience`) and the stop after 100 epochs without improvement.

    torch's scheduler cuts the lr on the (patience + 1)-th epoch without improvement and then counts
    afresh; our protocol cuts once `patience` epochs have passed since the best epoch or the last cut:
    hence patience + 1 here. The one difference left: the scheduler's relative threshold 1e-4."""
    return {"patience": patience + 1, "lr_decay_factor": PLATEAU_FACTOR, "lr_decays": PLATEAU_CUTS,
            "stop_patience": STOP_AFTER, "min_lr_factor": 1.0}  # fmt: skip


SEQ_TRAIN = {"lr": 1e-3, "weight_decay": 0.0, "warmup_epochs": 0, "batch_size": 64, "epochs": 200, **plateau(20)}
SEQ_TRAIN_BY_DATASET = {"sc_mfcc": plateau(15), "sc_raw": {"batch_size": 32, "epochs": 300}}  # sched_patience=15
CKCNN = {"arch": "ckcnn", "width": 30}  # the 100k model
# the CKConv paper's own runs: the CKConv repo's weight-normed kernel net (methods/kernelnets.py); also the
# CKCNN rows of FlexConv Tables 1 and 2, whose published numbers are the CKConv paper's
CKCNN_ORIGINAL = {**CKCNN, "weight_norm": True}
CKCNN_1M = {**CKCNN_ORIGINAL, "width": 100}
# dropout, input dropout, SIREN omega_0 and kernel-norm weight decay per dataset (runs/README.md, 100k models)
CKCONV_BY_DATASET = {
    "smnist": {"dropout": 0.1, "dropout_in": 0.1, "omega_0": 31.09195739463897},
    "pmnist": {"dropout": 0.0, "dropout_in": 0.1, "omega_0": 43.45667389601194},
    "scifar10": {"dropout": 0.2, "dropout_in": 0.0, "omega_0": 25.696},
    # not in the CKConv paper (FlexConv Table 1's CKCNN row has no command): sCIFAR10's settings
    "npcifar10": {"dropout": 0.2, "dropout_in": 0.0, "omega_0": 25.696},
    "sc_mfcc": {"dropout": 0.2, "dropout_in": 0.0, "omega_0": 30.90257553169801},
    "sc_raw": {"dropout": 0.0, "dropout_in": 0.0, "omega_0": 39.450608806633795, "kernel_wd": 1e-4},
}
CKCONV_1M_BY_DATASET = {  # the 1M commands (h = 100)
    "smnist": {"dropout": 0.2, "dropout_in": 0.2, "omega_0": 30.5},
    "pmnist": {"dropout": 0.0, "dropout_in": 0.2, "omega_0": 42.161651744476515},
    "scifar10": {"dropout": 0.3, "dropout_in": 0.0, "omega_0": 25.696, "kernel_wd": 1e-4, "weight_dropout": 0.1},
}
# PhysioNet 2019 sepsis (runs/README.md): h = 30, batch 1024, dropout 0.1, input dropout 0.1, kernel-norm weight
# decay 1e-4, omega_0 9.779; the sequence protocol's Adam 1e-3 and plateau schedule, selected on validation AUC
CKCNN_PHYSIONET = {"dropout": 0.1, "dropout_in": 0.1, "kernel_wd": 1e-4, "omega_0": 9.779}

SUITES = (
    Suite(
        name="ckconv-seq",
        description="CKConv paper: CKCNN (100k) on sMNIST, pMNIST, sCIFAR10, Speech Commands MFCC and raw (GPU, "
        "downloads)",
        methods=("ckconv",),
        datasets=("smnist", "pmnist", "scifar10", "sc_mfcc", "sc_raw"),
        seeds=(0, 1, 2),
        train=SEQ_TRAIN,
        train_by_dataset=SEQ_TRAIN_BY_DATASET,
        model_by_dataset=CKCONV_BY_DATASET,
        model_by_method={"ckconv": CKCNN_ORIGINAL},
        tags=("suite:ckconv-seq",),
    ),
    # a named preset: the 1M model, a suite whose runs stand in the ckconv-seq table
    Suite(
        name="ckcnn-1m",
        description="CKConv paper: CKCNN (1M, h = 100) on sMNIST, pMNIST, sCIFAR10 with its per-dataset settings "
        "(rows of the ckconv-seq table; GPU, downloads)",
        methods=("ckconv",),
        datasets=tuple(CKCONV_1M_BY_DATASET),
        seeds=(0, 1, 2),
        train=SEQ_TRAIN,
        model_by_dataset=CKCONV_1M_BY_DATASET,
        model_by_method={"ckconv": CKCNN_1M},
        tags=("suite:ckcnn-1m",),
    ),
    Suite(
        name="ckconv-physionet",
        description="CKConv paper: CKCNN (100k) on PhysioNet 2019 sepsis, test AUC (GPU, manual download)",
        methods=("ckconv",),
        datasets=("physionet2019",),
        seeds=(0, 1, 2),
        train={**SEQ_TRAIN, "batch_size": 1024},
        model_by_dataset={"physionet2019": CKCNN_PHYSIONET},
        model_by_method={"ckconv": CKCNN_ORIGINAL},
        tags=("suite:ckconv-physionet",),
    ),
    # CKConv's sampling-rate protocol offline (experiments.md 2a): train at one rate, test zero-shot at another. MNIST-1D's
    # generator draws the same signals at 80 steps (twice the rate), so a model trained at 40 steps is tested at 80;
    # methods whose card says resolution_change are told the ratio (FlexConv/CKConv re-space their kernel positions,
    # N-Jet scales sigma), the rest keep their discrete kernels. The cpu suite's protocol and models.
    Suite(
        name="crossrate-mnist1d",
        description="CKConv's sampling-rate protocol offline: train on MNIST-1D at 40 steps, test zero-shot at 80 "
        "(CPU, minutes)",
        methods=("flexconv", "ckconv", "njet", "conv", "conv33", "s4d"),
        datasets=("mnist1d",),
        seeds=(0, 1, 2),
        train=CPU_TRAIN,
        train_by_method=CPU_SIREN_LR,
        model_by_dim=CPU_MODELS,
        data={"mnist1d": {"length": 40}},
        crossres=check_settings({"target": 80, "finetune_epochs": 0}),
        tags=("suite:crossrate-mnist1d",),
    ),
)

TABLES = (
    PaperTable("ckconv-seq", "CKConv: sequential image classification and Speech Commands", "ckconv-seq",
               {"smnist": "sMNIST", "pmnist": "pMNIST", "scifar10": "sCIFAR10", "sc_mfcc": "SC MFCC",
                "sc_raw": "SC raw"},
               (Row("CKCNN (100k)", "ckconv", CKCNN_ORIGINAL), Row("CKCNN (1M)", "ckconv", CKCNN_1M, suite="ckcnn-1m")),
               also=("ckcnn-1m",)),
    PaperTable("ckconv-physionet", "CKConv: PhysioNet 2019 sepsis (test AUC)", "ckconv-physionet",
               {"physionet2019": "PhysioNet"}, (Row("CKCNN (100k)", "ckconv", CKCNN_ORIGINAL),), ("auc",)),
    PaperTable("crossrate-mnist1d", "Sampling-rate protocol on MNIST-1D: trained at 40 steps, tested zero-shot at 80 "
               "(offline; no published numbers)", "crossrate-mnist1d", {"mnist1d": "MNIST-1D"}, (), CROSSRES_METRICS),
)  # fmt: skip
