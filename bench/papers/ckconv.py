"""CKConv (Romero et al., ICLR 2022): the CKCNN on sequences (also the FlexConv paper's sequence protocol), its
sampling-rate and missing-data experiments (CharacterTrajectories, SC raw) and both protocols offline, their tables and results/reference/ckconv.csv. Sources: dwromero/ckconv
runs/README.md (methods.md, Part 1, C.1), checked by tests/test_paper_settings.py."""

from __future__ import annotations

from bench.papers import CROSSRES_METRICS, PaperTable, Row
from bench.run.crossres import check_settings
from bench.run.suite import Suite, Variant
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

# CharacterTrajectories (runs/README.md): batch 32, 200 epochs, dropout 0.1, no input dropout, no kernel weight decay;
# omega_0 21.4496 at sr_train 1, 2 and 4, 12.5894 at 8. SC raw at every sr_train: its ckconv-seq settings
CT_TRAIN = {"batch_size": 32}
CKCONV_CT = {"dropout": 0.1, "dropout_in": 0.0, "kernel_wd": 0.0, "omega_0": 21.44961185481323}
CT_OMEGA_SR8 = 12.589391905289371  # sr_train 8
RATES = {1: "1", 2: "1/2", 4: "1/4", 8: "1/8"}  # sr (keep every sr-th step) -> the sampling rate


def rate_variants(short: str, omega_by_sr: dict[int, float]) -> tuple[Variant, ...]:
    """Train and test at sr 1, 2, 4, 8 (CKConv's sr_train, with sr_test = sr_train), one column each."""
    return tuple(Variant(f"{short} rate {rate}", {"sr": sr}, {"omega_0": omega_by_sr[sr]} if sr in omega_by_sr else {})
                 for sr, rate in RATES.items())  # fmt: skip


def drop_variants(short: str, model_by_rate: dict[float, dict]) -> tuple[Variant, ...]:
    """30, 50 and 70 % of the steps dropped (drop_rate), each rate with its command's model settings."""
    return tuple(Variant(f"{short} {round(rate * 100)} %", {"drop_rate": rate}, model)
                 for rate, model in model_by_rate.items())  # fmt: skip


def crossrate_variants(short: str, omega_by_sr: dict[int, float]) -> tuple[Variant, ...]:
    """Zero-shot pairs (the paper's own pairs are not verified): trained at rate 1, tested at 1/2, 1/4, 1/8; trained
    at 1/2, 1/4, 1/8, tested at 1; each with the command of its training rate (sr_train)."""
    pairs = [(1, sr) for sr in (2, 4, 8)] + [(sr, 1) for sr in (2, 4, 8)]
    return tuple(Variant(f"{short} {RATES[a]}→{RATES[b]}", {"sr": a}, {"omega_0": omega_by_sr[a]} if a in omega_by_sr
                         else {}, check_settings({"target": b, "finetune_epochs": 0}))
                 for a, b in pairs)  # fmt: skip


# the missing-data commands: dropout, input dropout, kernel weight decay, kernel dropout and omega_0 per rate
CT_DROPPED = {
    0.3: {"dropout": 0.2, "dropout_in": 0.0, "kernel_wd": 0.0, "omega_0": 17.243982444546685},
    0.5: {"dropout": 0.0, "dropout_in": 0.0, "kernel_wd": 1e-4, "omega_0": 11.997102427300288},
    0.7: {"dropout": 0.1, "dropout_in": 0.0, "kernel_wd": 0.0, "omega_0": 4.237433943113986},
}
SC_RAW_DROPPED = {
    0.3: {"dropout": 0.1, "dropout_in": 0.0, "kernel_wd": 1e-4, "weight_dropout": 0.0, "omega_0": 35.655229877794035},
    0.5: {"dropout": 0.0, "dropout_in": 0.0, "kernel_wd": 1e-4, "weight_dropout": 0.0, "omega_0": 31.700745675276966},
    0.7: {"dropout": 0.1, "dropout_in": 0.1, "kernel_wd": 0.0, "weight_dropout": 0.1, "omega_0": 23.29255834358289},
}
ROBUSTNESS_MODELS = {"char_trajectories": CKCONV_CT, "sc_raw": CKCONV_BY_DATASET["sc_raw"]}
ROBUSTNESS_TRAIN = {"char_trajectories": CT_TRAIN, "sc_raw": SEQ_TRAIN_BY_DATASET["sc_raw"]}
# the offline missing-data protocol: MNIST-1D (40 steps) with none, 30, 50, 70 % of its steps dropped
MNIST1D_DROPPED = (Variant("MNIST-1D 0 %"), *drop_variants("MNIST-1D", {0.3: {}, 0.5: {}, 0.7: {}}))


def robustness_suite(name: str, description: str, variants: dict) -> Suite:
    """A CKConv robustness suite: the 100k CKCNN on CharacterTrajectories and SC raw under the sequence protocol,
    each dataset run as `variants` (rates or drop rates, each with its command's settings)."""
    return Suite(name=name, description=description, methods=("ckconv",), datasets=("char_trajectories", "sc_raw"),
                 seeds=(0, 1, 2), train=SEQ_TRAIN, train_by_dataset=ROBUSTNESS_TRAIN, model_by_dataset=ROBUSTNESS_MODELS,
                 model_by_method={"ckconv": CKCNN_ORIGINAL}, variants=variants, tags=(f"suite:{name}",))  # fmt: skip


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
    # CKConv's sampling-rate runs (experiments.md 2a): trained and tested at one rate, sr 1, 2, 4, 8
    robustness_suite(
        "ckconv-sr",
        "CKConv paper: CKCNN (100k) on CharacterTrajectories and SC raw at sampling rates 1, 1/2, 1/4, "
        "1/8 (GPU; CT a manual download)",
        {
            "char_trajectories": rate_variants("CT", {8: CT_OMEGA_SR8}),
            "sc_raw": rate_variants("SC raw", {}),
        },
    ),
    # the sampling-rate change (experiments.md 2a): trained at one rate, tested zero-shot at another (crossres)
    robustness_suite(
        "ckconv-crossrate",
        "CKConv paper: CKCNN (100k) on CharacterTrajectories and SC raw trained at one sampling rate and "
        "tested zero-shot at another (1 → 1/2, 1/4, 1/8 and back; GPU; CT a manual download)",
        {
            "char_trajectories": crossrate_variants("CT", {8: CT_OMEGA_SR8}),
            "sc_raw": crossrate_variants("SC raw", {}),
        },
    ),
    # CKConv's missing-data runs (experiments.md 2b): 30, 50, 70 % of the steps dropped, each with its own settings
    robustness_suite(
        "ckconv-missing",
        "CKConv paper: CKCNN (100k) on CharacterTrajectories and SC raw with 30, 50, 70 % of the steps "
        "dropped (GPU; CT a manual download)",
        {
            "char_trajectories": drop_variants("CT", CT_DROPPED),
            "sc_raw": drop_variants("SC raw", SC_RAW_DROPPED),
        },
    ),
    # the missing-data protocol offline: the crossrate-mnist1d methods under the cpu suite's protocol and models
    Suite(
        name="missing-mnist1d",
        description="CKConv's missing-data protocol offline: MNIST-1D with 0, 30, 50, 70 % of its steps dropped, "
        "6 methods, 3 seeds (CPU, minutes)",
        methods=("flexconv", "ckconv", "njet", "conv", "conv33", "s4d"),
        datasets=("mnist1d",),
        seeds=(0, 1, 2),
        train=CPU_TRAIN,
        train_by_method=CPU_SIREN_LR,
        model_by_dim=CPU_MODELS,
        variants={"mnist1d": MNIST1D_DROPPED},
        tags=("suite:missing-mnist1d",),
    ),
)

ROBUSTNESS_COLUMNS = {"char_trajectories": "CharacterTrajectories", "sc_raw": "SC raw"}
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
    PaperTable("ckconv-sr", "CKConv: CharacterTrajectories and SC raw trained and tested at sampling rate 1, 1/2, 1/4, "
               "1/8 (no published number verified)", "ckconv-sr", ROBUSTNESS_COLUMNS,
               (Row("CKCNN (100k)", "ckconv", CKCNN_ORIGINAL),)),
    PaperTable("ckconv-crossrate", "CKConv: CharacterTrajectories and SC raw trained at one sampling rate, tested "
               "zero-shot at another (no published number verified)", "ckconv-crossrate", ROBUSTNESS_COLUMNS,
               (Row("CKCNN (100k)", "ckconv", CKCNN_ORIGINAL),), CROSSRES_METRICS),
    PaperTable("ckconv-missing", "CKConv: CharacterTrajectories and SC raw with 30, 50, 70 % of the steps dropped "
               "(published: the Neural CDE paper's baselines on CT; CKCNN's own not verified)", "ckconv-missing",
               ROBUSTNESS_COLUMNS, (Row("CKCNN (100k)", "ckconv", CKCNN_ORIGINAL),)),
    PaperTable("missing-mnist1d", "Missing-data protocol on MNIST-1D: 0, 30, 50, 70 % of the steps dropped (offline; "
               "no published numbers)", "missing-mnist1d", {"mnist1d": "MNIST-1D"}),
)  # fmt: skip
