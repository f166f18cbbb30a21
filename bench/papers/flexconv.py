"""FlexConv (Romero et al., ICLR 2022): its suites (Tables 1-4 and 6-9, the FlexTCN-4 preset, Table 4's protocol
offline on shapes) and its tables, our rows beside the published numbers of results/reference/flexconv.csv.

Sources: the official run commands (rjbruin/flexconv experiments/readme.md), summarised in methods.md,
Part 1, C.2; tests/test_paper_settings.py states each command's values and checks every suite's grid
against them. `--budget F` runs a fraction F of the epochs (and of the cross-resolution fine-tuning);
those rows are marked.

Where our one protocol differs from the papers' code (bench/run/protocol.py): AdamW with weight decay 0
is Adam; the papers' "weight decay" of continuous kernels is an un-squared norm penalty on the sampled
kernels of the CKConv/FlexConv layers only (`kernel_wd`), so it does nothing to N-Jet or ResNets; and
by default the checkpoint is picked on a validation split carved from the training set, not on the
test set. `--selection paper` runs the papers' own protocol instead (all training data, best test over
epochs; rows marked "paper protocol").

A suite runs each method once per dataset. The papers' variants of one method are rows of the same
tables: FlexTCN-4 has a suite of its own (`flextcn4`, whose runs stand in Tables 1 and 2); the others
(FlexNet-3/5 against FlexNet-7, the anti-aliasing targets of Table 4) run with `--methods NAME --set
model.KEY=VALUE` (README, "Paper tables").
"""

from __future__ import annotations

from bench.papers import CROSSRES_METRICS, PaperTable, Row
from bench.papers.ckconv import CKCNN, CKCNN_ORIGINAL, CKCONV_BY_DATASET, SEQ_TRAIN, SEQ_TRAIN_BY_DATASET
from bench.run.crossres import check_settings
from bench.run.suite import Suite

ETA_MIN = 1e-6  # cosine floor of every FlexConv/CKConv image run


def adam(lr: float, **extra) -> dict:
    """Train settings for Adam at `lr` with cosine decay to ETA_MIN."""
    return {"lr": lr, "weight_decay": 0.0, "min_lr_factor": ETA_MIN / lr, **extra}


# -- images (C.2): Adam 0.01 for MAGNet/Gabor/Fourier kernel nets, 0.001 for SIREN (Table 3 only: the
# cross-resolution SIREN commands use 0.01); 5 warm-up epochs. The commands' train.weight_decay (1e-5 for
# N-Jet and ImageNet) is the kernel-norm penalty: `kernel_wd` on FlexConv, nothing on N-Jet or ResNets.
IMAGE_TRAIN = adam(0.01, warmup_epochs=5, batch_size=64, epochs=350)
SIREN = adam(1e-3)  # the SIREN kernel nets' learning rate in Table 3
# the networks as the tables' rows name them; every suite trains them with dropout 0.2
FLEXNET3 = {"arch": "flexnet3", "width": 24}
FLEXNET5 = {"arch": "flexnet5", "width": 22}
FLEXNET7 = {"arch": "flexnet7", "width": 24}
DROPOUT = 0.2
IMAGENET_WD = {"kernel_wd": 1e-5}  # the ImageNet-32 / ImageNet-k commands' train.weight_decay=1e-05
FLEXNET5_IMAGENET = {**FLEXNET5, "dropout": DROPOUT, **IMAGENET_WD}
NJET_IMAGENET = {"njet": {"imagenet32": {"width": 32}}}  # the FlexNet-5 N-Jet command: net.no_hidden=32, not 38
LAYER_METHODS = ("flexconv", "conv", "conv33", "njet", "ckconv", "ckconv_magnet", "flexconv_siren", "flexconv_gabor",
                 "flexconv_fourier", "dcn_sigma", "dcls", "deformable", "srf_gauss", "dilated",
                 "smpconv", "flexconv_sep", "s4d", "rfnn", "dau")  # fmt: skip
CIFAR_RESNETS = ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110")
RESNET = {"width": 16}  # He et al.'s 16/32/64, not the FlexNet width
RESNET_WIDTH = {name: RESNET for name in CIFAR_RESNETS}
ANTIALIAS = {"antialias": 0.1}  # Table 4's "gabor" target: lambda 0.1, no mask term (the headline row)

# -- sequences: the CKConv paper's protocol (bench/papers/ckconv.py). FlexTCN-N as the FlexConv sequence test
# case (there 2 blocks): h = 30, BatchNorm, MAGNet 32 x 3, dropout 0.1, kernel-norm wd 1e-4
FLEXTCN6 = {"arch": "flextcn6", "width": 30, "dropout": 0.1, "kernel_wd": 1e-4}  # also S4D's net (no kernel_wd)
FLEXTCN4 = {**FLEXTCN6, "arch": "flextcn4"}  # Table 1's pMNIST and Table 2's SC-MFCC numbers are FlexTCN-4's
# Bai et al.'s TCN: 8 levels on sMNIST / pMNIST (one more than covering 784 steps takes), and their
# dropout 0.05 everywhere
TCN_LEVELS = {"smnist": {"levels": 8}, "pmnist": {"levels": 8}}
TCN = {"dropout": 0.05}
SEQ_BY_METHOD = {"flexconv": FLEXTCN6, "ckconv": CKCNN_ORIGINAL, "tcn": TCN, "s4d": FLEXTCN6}
SEQ_BY_METHOD_DATASET = {"ckconv": CKCONV_BY_DATASET, "tcn": TCN_LEVELS}

SUITES = (
    Suite(
        name="flexconv-seq",
        description="FlexConv Table 1: sMNIST, pMNIST, sCIFAR10, npCIFAR10 with FlexTCN-6, CKCNN, TCN and FlexTCN-6 "
        "with S4D (GPU, downloads)",
        methods=("flexconv", "ckconv", "tcn", "s4d"),
        datasets=("smnist", "pmnist", "scifar10", "npcifar10"),
        seeds=(0, 1, 2),
        train=SEQ_TRAIN,
        model_by_method=SEQ_BY_METHOD,
        model_by_method_dataset=SEQ_BY_METHOD_DATASET,
        tags=("suite:flexconv-seq",),
    ),
    Suite(
        name="flexconv-sc",
        description="FlexConv Table 2: Speech Commands raw and MFCC with FlexTCN-6, CKCNN, TCN and FlexTCN-6 with S4D "
        "(GPU, downloads)",
        methods=("flexconv", "ckconv", "tcn", "s4d"),
        datasets=("sc_raw", "sc_mfcc"),
        seeds=(0, 1, 2),
        train=SEQ_TRAIN,
        train_by_dataset=SEQ_TRAIN_BY_DATASET,
        model_by_method=SEQ_BY_METHOD,
        model_by_method_dataset=SEQ_BY_METHOD_DATASET,
        tags=("suite:flexconv-sc",),
    ),
    Suite(
        name="flexconv-cifar",
        description="FlexConv Table 3: CIFAR-10, FlexNet-7 with FlexConv and every other layer method, CIFAR ResNets, "
        "ablations (GPU, downloads)",
        methods=LAYER_METHODS + CIFAR_RESNETS,
        datasets=("cifar10",),
        seeds=(0, 1, 2),
        train=IMAGE_TRAIN,
        train_by_method={"ckconv": SIREN, "flexconv_siren": SIREN},
        model_by_dim={2: {**FLEXNET7, "dropout": DROPOUT}},
        model_by_method={"conv": {"kernel_size": 3}, "njet": {"width": 38}, **RESNET_WIDTH},
        tags=("suite:flexconv-cifar",),
    ),
    Suite(
        name="flexconv-crossres",
        description="FlexConv Tables 4 and 7: train at 16 px, test at 32 px, fine-tune at 32 px (CIFAR-10 by default; "
        "--datasets imagenet32 for ImageNet-k; GPU)",
        methods=("flexconv", "conv", "conv33", "njet", "resnet32", "resnet44", "flexconv_siren", "ckconv"),
        datasets=("cifar10",),
        seeds=(0, 1, 2),
        train=adam(0.01, warmup_epochs=5, batch_size=64, epochs=100),  # SIREN nets too (their commands)
        train_by_dataset={"imagenet32": {"batch_size": 2048}},
        model_by_dim={2: {**FLEXNET7, "dropout": DROPOUT}},
        model_by_dataset={"imagenet32": FLEXNET5_IMAGENET},
        model_by_method={"flexconv": ANTIALIAS, "conv": {"kernel_size": 3}, "njet": {"width": 38}, **RESNET_WIDTH},
        model_by_method_dataset=NJET_IMAGENET,
        datasets_by_method={m: ("cifar10",) for m in ("resnet44", "conv", "conv33", "flexconv_siren", "ckconv")},
        data={"cifar10": {"resolution": 16}, "imagenet32": {"resolution": 16}},
        crossres=check_settings({"target": 32, "finetune_epochs": 100}),
        tags=("suite:flexconv-crossres",),
    ),
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
        model_by_dataset={
            "mnist": {**FLEXNET7, "dropout": DROPOUT},
            "stl10": {**FLEXNET7, "dropout": DROPOUT},
            "imagenet32": FLEXNET5_IMAGENET,
        },
        model_by_method={"resnet10": {"width": 64}, "resnet18": {"width": 64}},  # torchvision's, not FlexNet's 24
        datasets_by_method={"resnet10": ("stl10",), "resnet18": ("stl10",)},
        tags=("suite:flexconv-other",),
    ),
    # a named preset: FlexTCN-4, a suite whose runs stand in Tables 1 and 2
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
        tags=("suite:flextcn4",),
    ),
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
        tags=("suite:crossres-shapes",),
    ),
)

# -- the tables: a run stands on a row when its method and the row's hparams match
TCN_ARCHS = {"flextcn2": "FlexTCN-2", "flextcn4": "FlexTCN-4", "flextcn6": "FlexTCN-6"}
# FlexTCN-4's runs are the flextcn4 preset's (the model of Table 1's pMNIST and Table 2's SC-MFCC numbers)
SEQ_ROWS = (*(Row(label, "flexconv", {"width": 30, "arch": arch}, suite="flextcn4" if arch == "flextcn4" else "")
              for arch, label in TCN_ARCHS.items()),
            Row("CKCNN", "ckconv", CKCNN), Row("TCN", "tcn"),
            Row("FlexTCN-6 with S4D", "s4d", {"arch": "flextcn6", "width": 30}))  # fmt: skip
ON_FLEXNET7 = (("CKCNN (SIREN, no mask)", "ckconv"), ("CKCNN-MAGNet", "ckconv_magnet"),
               ("FlexNet-SIREN", "flexconv_siren"), ("MFN-Gabor", "flexconv_gabor"),
               ("MFN-Fourier", "flexconv_fourier"), ("DCN-σ", "dcn_sigma"), ("FlexNet-7 with DCLS", "dcls"),
               ("FlexNet-7 with deformable conv", "deformable"), ("FlexNet-7 with Shelhamer blur + conv", "srf_gauss"),
               ("FlexNet-7 with RFNN (fixed Gaussian-derivative basis)", "rfnn"), ("FlexNet-7 with DAU", "dau"),
               ("FlexNet-7 with dilated conv", "dilated"), ("FlexNet-7 with SMPConv", "smpconv"),
               ("FlexNet-7 with separable FlexConv (CCNN)", "flexconv_sep"),
               ("FlexNet-7 with S4D (per-axis, S4ND)", "s4d"))  # fmt: skip
FIXED_ROWS = (Row("FlexNet-7 with Conv k=3", "conv", {**FLEXNET7, "kernel_size": 3}),
              Row("FlexNet-7 with Conv k=33", "conv33", FLEXNET7),
              Row("FlexNet-7 with N-Jet", "njet", {**FLEXNET7, "width": 38}))  # fmt: skip

TABLES = (
    PaperTable("flexconv-t1", "FlexConv Table 1: sequential image classification", "flexconv-seq",
               {"smnist": "sMNIST", "pmnist": "pMNIST", "scifar10": "sCIFAR10", "npcifar10": "npCIFAR10"}, SEQ_ROWS,
               also=("flextcn4",)),
    PaperTable("flexconv-t2", "FlexConv Table 2: Speech Commands", "flexconv-sc",
               {"sc_raw": "SC raw", "sc_mfcc": "SC MFCC"}, SEQ_ROWS, also=("flextcn4",)),
    PaperTable("flexconv-t3", "FlexConv Table 3: CIFAR-10", "flexconv-cifar", {"cifar10": "CIFAR-10"}, (
        *(Row(f"FlexNet-{n}{label}", "flexconv", {**net, "kernel_wd": wd}) for label, wd in (("", 0.0),
          (" (wd 1e-5)", 1e-5)) for n, net in ((3, FLEXNET3), (5, FLEXNET5), (7, FLEXNET7))),
        *FIXED_ROWS,
        *(Row(label, method, FLEXNET7) for label, method in ON_FLEXNET7),
        *(Row(f"CIFARResNet-{d}", f"resnet{d}", RESNET) for d in (20, 32, 44, 56, 110)),
    )),
    PaperTable("flexconv-t4", "FlexConv Table 4: CIFAR-10, train at 16 px, test and fine-tune at 32 px",
               "flexconv-crossres", {"cifar10": "CIFAR-10"}, (
        Row("FlexNet-7 (no regularisation)", "flexconv", {**FLEXNET7, "antialias": 0.0}),
        Row("FlexNet-7 (gabor)", "flexconv", {**FLEXNET7, "antialias": 0.1, "antialias_mask": False}),
        Row("FlexNet-7 (gabor+mask)", "flexconv", {**FLEXNET7, "antialias": 0.1, "antialias_mask": True}),
        *FIXED_ROWS,
        Row("CIFARResNet-32", "resnet32", RESNET),
        Row("CIFARResNet-44", "resnet44", RESNET),
        Row("FlexNet-7 (FlexConv SIREN)", "flexconv_siren", FLEXNET7),
        Row("FlexNet-7 (CKCNN SIREN)", "ckconv", FLEXNET7),
    ), CROSSRES_METRICS),
    PaperTable("flexconv-t6", "FlexConv Table 6: ImageNet-32", "flexconv-other", {"imagenet32": "ImageNet-32"},
               (Row("FlexNet-5", "flexconv", FLEXNET5),), ("accuracy", "top5")),
    PaperTable("flexconv-t7", "FlexConv Table 7: ImageNet-k, train at 16 px, test and fine-tune at 32 px",
               "flexconv-crossres", {"imagenet32": "ImageNet-k"}, (
        Row("FlexNet-5 (gabor)", "flexconv", {**FLEXNET5, "antialias": 0.1, "antialias_mask": False}),
        Row("ResNet-32", "resnet32", RESNET),
        Row("FlexNet-5 with N-Jet", "njet", {**FLEXNET5, "width": 32}),
    ), CROSSRES_METRICS),
    PaperTable("flexconv-t8", "FlexConv Table 8: MNIST (2D)", "flexconv-other", {"mnist": "MNIST"},
               (Row("FlexNet-7", "flexconv", FLEXNET7),)),
    PaperTable("flexconv-t9", "FlexConv Table 9: STL-10", "flexconv-other", {"stl10": "STL-10"},
               (Row("FlexNet-7", "flexconv", FLEXNET7), Row("ResNet-18", "resnet18"), Row("ResNet-10", "resnet10"))),
    PaperTable("crossres-shapes", "Cross-resolution protocol on procedural shapes (offline; no published numbers)",
               "crossres-shapes", {"shapes": "shapes"}, (), CROSSRES_METRICS),
)  # fmt: skip
