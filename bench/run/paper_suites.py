"""Suites that rerun the FlexConv, CKConv, SMPConv and CCNN papers' experiments with their hyperparameters.

Sources: the official run commands, summarised in methods.md, Part 1, C.1 (dwromero/ckconv runs/README.md:
CKConv runs), C.2 (rjbruin/flexconv experiments/readme.md: FlexConv runs) and C.3 (CCNN runs); the SMPConv
repository's smp/README.md. tests/test_paper_settings.py states each official command's values and checks
every suite's grid against them. Every suite tags its runs "suite:<name>", which is how
bench/report/paper_tables.py finds them. `--budget F` runs a fraction F of the epochs (and of the
cross-resolution fine-tuning); those rows are marked.

Where our one protocol differs from the papers' code (bench/run/protocol.py): AdamW with weight decay 0
is Adam; the papers' "weight decay" of continuous kernels is an un-squared norm penalty on the sampled
kernels of the CKConv/FlexConv layers only (`kernel_wd`), so it does nothing to N-Jet or ResNets; and
by default the checkpoint is picked on a validation split carved from the training set, not on the
test set. `--selection paper` runs the papers' own protocol instead (all training data, best test over
epochs; rows marked "paper protocol").

A suite runs each method once per dataset. The papers' variants of one method are rows of the same
tables: the 1M CKCNN and FlexTCN-4 have suites of their own (`ckcnn-1m`, `flextcn4`, whose runs stand in
the CKConv and FlexConv Table 1/2 tables); the others (FlexNet-3/5 against FlexNet-7, the anti-aliasing
targets of Table 4) run with `--methods NAME --set model.KEY=VALUE` (README, "Paper tables").
"""

from __future__ import annotations

from bench.run.crossres import check_settings
from bench.run.suite import Suite, add_suite
from bench.run.suites import CPU_MODELS, CPU_SIREN_LR, CPU_TRAIN

ETA_MIN = 1e-6  # cosine floor of every FlexConv/CKConv image run


def adam(lr: float, **extra) -> dict:
    """Train settings for Adam at `lr` with cosine decay to ETA_MIN."""
    return {"lr": lr, "weight_decay": 0.0, "min_lr_factor": ETA_MIN / lr, **extra}


# -- images (C.2): Adam 0.01 for MAGNet/Gabor/Fourier kernel nets, 0.001 for SIREN (Table 3 only: the
# cross-resolution SIREN commands use 0.01); 5 warm-up epochs. The commands' train.weight_decay (1e-5 for
# N-Jet and ImageNet) is the kernel-norm penalty: `kernel_wd` on FlexConv, nothing on N-Jet or ResNets.
IMAGE_TRAIN = adam(0.01, warmup_epochs=5, batch_size=64, epochs=350)
SIREN = adam(1e-3)  # the SIREN kernel nets' learning rate in Table 3
FLEXNET7 = {"arch": "flexnet7", "width": 24, "dropout": 0.2}
FLEXNET5 = {"arch": "flexnet5", "width": 22, "dropout": 0.2}
IMAGENET_WD = {"kernel_wd": 1e-5}  # the ImageNet-32 / ImageNet-k commands' train.weight_decay=1e-05
NJET_IMAGENET = {"njet": {"imagenet32": {"width": 32}}}  # the FlexNet-5 N-Jet command: net.no_hidden=32, not 38
LAYER_METHODS = ("flexconv", "conv", "conv33", "njet", "ckconv", "ckconv_magnet", "flexconv_siren", "flexconv_gabor",
                 "flexconv_fourier", "dcn_sigma", "dcls", "deformable", "srf_gauss", "dilated",
                 "smpconv", "flexconv_sep", "s4d", "rfnn", "dau")  # fmt: skip
CIFAR_RESNETS = ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110")
RESNET_WIDTH = {name: {"width": 16} for name in CIFAR_RESNETS}  # He et al.'s 16/32/64, not the FlexNet width
ANTIALIAS = {"antialias": 0.1}  # Table 4's "gabor" target: lambda 0.1, no mask term (the headline row)

# -- sequences: the CKConv paper's protocol (C.1; dwromero/ckconv trainer.py), which the FlexConv repo's
# sequence test cases share (testcases/testcase_settings.txt): Adam 1e-3, no warm-up, a flat lr cut by
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
SC_MFCC_TRAIN = plateau(15)  # --config.sched_patience=15
SC_RAW_TRAIN = {"batch_size": 32, "epochs": 300}
SEQ_TRAIN_BY_DATASET = {"sc_mfcc": SC_MFCC_TRAIN, "sc_raw": SC_RAW_TRAIN}
# FlexTCN-N as the FlexConv sequence test case (there 2 blocks): h = 30, BatchNorm, MAGNet 32 x 3, dropout 0.1,
# kernel-norm wd 1e-4
FLEXTCN6 = {"arch": "flextcn6", "width": 30, "dropout": 0.1, "kernel_wd": 1e-4}  # also S4D's net (no kernel_wd)
FLEXTCN4 = {**FLEXTCN6, "arch": "flextcn4"}  # Table 1's pMNIST and Table 2's SC-MFCC numbers are FlexTCN-4's
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
# Bai et al.'s TCN: 8 levels on sMNIST / pMNIST (one more than covering 784 steps takes), and their
# dropout 0.05 everywhere
TCN_LEVELS = {"smnist": {"levels": 8}, "pmnist": {"levels": 8}}
TCN = {"dropout": 0.05}
SEQ_BY_METHOD_DATASET = {"ckconv": CKCONV_BY_DATASET, "tcn": TCN_LEVELS}


def tag(name: str) -> tuple[str, ...]:
    return (f"suite:{name}",)


add_suite(
    Suite(
        name="flexconv-seq",
        description="FlexConv Table 1: sMNIST, pMNIST, sCIFAR10, npCIFAR10 with FlexTCN-6, CKCNN, TCN and FlexTCN-6 "
        "with S4D (GPU, downloads)",
        methods=("flexconv", "ckconv", "tcn", "s4d"),
        datasets=("smnist", "pmnist", "scifar10", "npcifar10"),
        seeds=(0, 1, 2),
        train=SEQ_TRAIN,
        model_by_method={"flexconv": FLEXTCN6, "ckconv": CKCNN_ORIGINAL, "tcn": TCN, "s4d": FLEXTCN6},
        model_by_method_dataset=SEQ_BY_METHOD_DATASET,
        tags=tag("flexconv-seq"),
    )
)

add_suite(
    Suite(
        name="flexconv-sc",
        description="FlexConv Table 2: Speech Commands raw and MFCC with FlexTCN-6, CKCNN, TCN and FlexTCN-6 with S4D "
        "(GPU, downloads)",
        methods=("flexconv", "ckconv", "tcn", "s4d"),
        datasets=("sc_raw", "sc_mfcc"),
        seeds=(0, 1, 2),
        train=SEQ_TRAIN,
        train_by_dataset=SEQ_TRAIN_BY_DATASET,
        model_by_method={"flexconv": FLEXTCN6, "ckconv": CKCNN_ORIGINAL, "tcn": TCN, "s4d": FLEXTCN6},
        model_by_method_dataset=SEQ_BY_METHOD_DATASET,
        tags=tag("flexconv-sc"),
    )
)

add_suite(
    Suite(
        name="flexconv-cifar",
        description="FlexConv Table 3: CIFAR-10, FlexNet-7 with FlexConv and every other layer method, CIFAR ResNets, "
        "ablations (GPU, downloads)",
        methods=LAYER_METHODS + CIFAR_RESNETS,
        datasets=("cifar10",),
        seeds=(0, 1, 2),
        train=IMAGE_TRAIN,
        train_by_method={"ckconv": SIREN, "flexconv_siren": SIREN},
        model_by_dim={2: FLEXNET7},
        model_by_method={"conv": {"kernel_size": 3}, "njet": {"width": 38}, **RESNET_WIDTH},
        tags=tag("flexconv-cifar"),
    )
)

add_suite(
    Suite(
        name="flexconv-crossres",
        description="FlexConv Tables 4 and 7: train at 16 px, test at 32 px, fine-tune at 32 px (CIFAR-10 by default; "
        "--datasets imagenet32 for ImageNet-k; GPU)",
        methods=("flexconv", "conv", "conv33", "njet", "resnet32", "resnet44", "flexconv_siren", "ckconv"),
        datasets=("cifar10",),
        seeds=(0, 1, 2),
        train=adam(0.01, warmup_epochs=5, batch_size=64, epochs=100),  # SIREN nets too (their commands)
        train_by_dataset={"imagenet32": {"batch_size": 2048}},
        model_by_dim={2: FLEXNET7},
        model_by_dataset={"imagenet32": {**FLEXNET5, **IMAGENET_WD}},
        model_by_method={"flexconv": ANTIALIAS, "conv": {"kernel_size": 3}, "njet": {"width": 38}, **RESNET_WIDTH},
        model_by_method_dataset=NJET_IMAGENET,
        datasets_by_method={
            "resnet44": ("cifar10",),
            "conv": ("cifar10",),
            "conv33": ("cifar10",),
            "flexconv_siren": ("cifar10",),
            "ckconv": ("cifar10",),
        },  # fmt: skip
        data={"cifar10": {"resolution": 16}, "imagenet32": {"resolution": 16}},
        crossres=check_settings({"target": 32, "finetune_epochs": 100}),
        tags=tag("flexconv-crossres"),
    )
)

add_suite(
    Suite(
        name="flexconv-other",
        description="FlexConv Tables 6, 8, 9: ImageNet-32 (FlexNet-5), MNIST and STL-10 (FlexNet-7; ResNet-10/18 on "
        "STL-10) (GPU; ImageNet-32 is a manual download)",
        methods=("flexconv", "resnet10", "resnet18"),
        datasets=("mnist", "stl10", "imagenet32"),
        seeds=(0, 1, 2),
        train=IMAGE_TRAIN,
        train_by_dataset={"stl10": {"epochs": 100, "batch_size": 256}, "imagenet32": {"batch_size": 2048}},
        train_by_method={"resnet10": {"epochs": 350}, "resnet18": {"epochs": 350}},
        model_by_dataset={"mnist": FLEXNET7, "stl10": FLEXNET7, "imagenet32": {**FLEXNET5, **IMAGENET_WD}},
        model_by_method={"resnet10": {"width": 64}, "resnet18": {"width": 64}},  # torchvision's, not FlexNet's 24
        datasets_by_method={"resnet10": ("stl10",), "resnet18": ("stl10",)},
        tags=tag("flexconv-other"),
    )
)  # fmt: skip

add_suite(
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
        tags=tag("ckconv-seq"),
    )
)

# -- named presets: the papers' other model sizes, each a suite whose runs stand in the paper's table
add_suite(
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
        tags=tag("ckcnn-1m"),
    )
)

add_suite(
    Suite(
        name="flextcn4",
        description="FlexConv Tables 1 and 2: FlexTCN-4 on pMNIST and Speech Commands MFCC, whose published numbers "
        "are FlexTCN-4's (rows of the flexconv-t1 and -t2 tables; GPU, downloads)",
        methods=("flexconv",),
        datasets=("pmnist", "sc_mfcc"),
        seeds=(0, 1, 2),
        train=SEQ_TRAIN,
        train_by_dataset=SEQ_TRAIN_BY_DATASET,
        model_by_method={"flexconv": FLEXTCN4},
        tags=tag("flextcn4"),
    )
)

add_suite(
    Suite(
        name="crossres-shapes",
        description="Table 4's protocol offline: train on 16 px shapes, test at 32 px, fine-tune at 32 px (CPU, about "
        "10 min on 2 cores)",
        methods=("flexconv", "conv", "conv33", "njet", "resnet20"),
        datasets=("shapes",),
        seeds=(0,),
        train=adam(3e-3, warmup_epochs=1, batch_size=64, epochs=6),
        model_by_dim={2: {"arch": "flexnet3", "width": 8, "dropout": 0.1}},
        model_by_method={"flexconv": ANTIALIAS, "conv": {"kernel_size": 3}, "resnet20": {"width": 8}},
        data={"shapes": {"resolution": 16, "n_train": 1500, "n_test": 500}},
        crossres=check_settings({"target": 32, "finetune_epochs": 2}),
        tags=tag("crossres-shapes"),
    )
)

# CKConv's sampling-rate protocol offline (experiments.md 2a): train at one rate, test zero-shot at another. MNIST-1D's
# generator draws the same signals at 80 steps (twice the rate), so a model trained at 40 steps is tested at 80;
# methods whose card says resolution_change are told the ratio (FlexConv/CKConv re-space their kernel positions,
# N-Jet scales sigma), the rest keep their discrete kernels. The cpu suite's protocol and models.
add_suite(
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
        tags=tag("crossrate-mnist1d"),
    )
)

# -- SMPConv (Kim & Park, CVPR 2023): the runs of sangnekim/SMPConv smp/README.md. FlexTCN-6 (h = 30)
# on sequences, FlexNet-7 (h = 24) on CIFAR-10, every conv an SMPConv with its small dense kernel;
# Adam with weight decay 1e-5 (the repo's Adam adds it as L2 to the gradients of the weights, not of biases,
# norms, points or radii; AdamW here), cosine to 1e-6 after 5 warm-up epochs (10 where given); the MNIST runs'
# input dropout 0.1. Not reproduced: the repo's augmentations.
SMP_BY_DIM = {
    1: {"arch": "flextcn6", "width": 30, "n_points": 30, "coord_std": 0.1, "small_kernel_size": 5},
    2: {"arch": "flexnet7", "width": 24, "n_points": 16, "coord_std": 0.05, "small_kernel_size": 3},
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

add_suite(
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
        tags=tag("smpconv"),
    )
)

# -- CCNN (Knigge, Romero et al., ICLR 2023): the Table 1 commands of david-knigge/ccnn experiments/README.md,
# one suite per size. AdamW, linear warm-up then cosine to 0; the repo's "weight decay" is a norm penalty
# in the training step (methods.md A.9), here the protocol's decoupled decay. Gradient accumulation
# (STL-10) becomes the effective batch; the distributed SC MFCC 6,380 run keeps its per-GPU batch of 10.
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


def ccnn_suite(name: str, size: dict, which: int) -> Suite:
    return Suite(
        name=name,
        description=f"CCNN Table 1, CCNN-{size['blocks']},{size['width']}: sMNIST, pMNIST, sCIFAR10, Speech "
        "Commands MFCC and raw, CIFAR-10, CIFAR-100, STL-10 (GPU, downloads)",
        methods=("ccnn",),
        datasets=tuple(CCNN_RUNS),
        seeds=(0, 1, 2),
        train={"min_lr_factor": 0.0},
        train_by_dataset={d: runs[which][1] for d, runs in CCNN_RUNS.items()},
        model_by_dataset={d: {**size, **runs[which][0]} for d, runs in CCNN_RUNS.items()},
        data={"cifar100": {"augment": False}, "stl10": {"augment": True}},
        tags=tag(name),
    )


add_suite(ccnn_suite("ccnn", CCNN_4_140, 0))
add_suite(ccnn_suite("ccnn-6380", CCNN_6_380, 1))
