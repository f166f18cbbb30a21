"""The CPU suites on embedded data: `cpu` (the default), `cpu-full`, `cpu-tune`, `smoke` (the papers' suites: bench/papers/)."""

from __future__ import annotations

from bench.run.suite import Suite

# -- the CPU benchmark: converged training, 10 seeds, on embedded data ------------------------
# One protocol for every method: AdamW at lr 3e-2 (near the MNIST-1D paper's 1e-2 at batch 100, and the
# value at which its slow-learning CNN comes closest to the paper in 30 epochs), batch 128, one warm-up epoch,
# then a flat learning rate divided by 10 once when the validation accuracy has not improved for 3 epochs, and a
# stop after 3 more such epochs (cap 40). Protocol 1 waited 4 epochs under a cap of 60: 3 costs about a fifth
# fewer epochs (measured side by side on MNIST-1D: conv 26 -> 21, N-Jet 29 -> 20, DCLS 25 -> 23 epochs), which
# buys 10 seeds. SIREN kernel nets keep their papers' lr 1e-3 (at 1e-2 CKConv's training is unstable).
CPU_TRAIN = dict(epochs=40, patience=3, lr_decays=1, lr=3e-2, batch_size=128, warmup_epochs=1, min_lr_factor=1.0)
CPU_SIREN_LR = {"ckconv": {"lr": 1e-3}, "flexconv_siren": {"lr": 1e-3}}
CPU_MODELS = {1: dict(arch="flextcn2", width=16, dropout=0.1), 2: dict(arch="flexnet3", width=4, dropout=0.1)}
# FlexConv's sigma0 = 0.075 is a 5 x 5 start on the paper's 33-grid but a single tap on
# 8-px digits (9-grid), where the mask cannot learn; 0.3 gives the paper's 5 x 5 start
CPU_BY_DATASET = {"digits": dict(mask_init=0.3)}
# one representative of every family, and the MNIST-1D paper's reference models
CPU_SEEDS = tuple(range(10))  # enough to rank: at 3 seeds a 1-sd difference is found in a few % of tables
CPU_FAMILIES = ("conv", "conv33", "dilated", "ckconv", "flexconv", "njet", "dcn_sigma", "dcls", "deformable",
                "srf_gauss", "tcn", "resnet20")  # fmt: skip
# The default: MNIST-1D only (it separates the methods; 8x8 digits is saturated and moved to cpu-full, with the
# 2D-only ResNet-20), the three cheap reference models as anchors (the GRU, a fifth of the rest's cost, is in
# mnist1d-paper and cpu-full), 10 seeds. NOTE of issue 19: about 10 min on 2 quiet cores, estimated from runs
# measured side by side; the README's figure is a measurement.
CPU_DEFAULT_REFERENCES = ("logreg", "mlp", "cnn1d_mnist1d")

SUITES = (
    Suite(
        name="cpu",
        description="default: one method of every family and three of the MNIST-1D paper's models on MNIST-1D, "
        "trained to convergence, 10 seeds (about 10 min on 2 CPU cores)",
        methods=tuple(m for m in CPU_FAMILIES if m != "resnet20") + CPU_DEFAULT_REFERENCES,
        datasets=("mnist1d",),
        seeds=CPU_SEEDS,
        train=CPU_TRAIN,
        train_by_method=CPU_SIREN_LR,
        model_by_dim=CPU_MODELS,
        model_by_dataset=CPU_BY_DATASET,
        tags=("suite:cpu",),
    ),
    Suite(
        name="cpu-full",
        description="the cpu suite's protocol for every method (ablations, ResNet depths, later methods) on MNIST-1D, "
        "shuffled MNIST-1D, MNIST-1D with half its steps missing, digits and 16-px shapes, 3 seeds (CPU, hours)",
        methods=("*",),
        datasets=("mnist1d", "mnist1d_shuffled", "mnist1d_missing", "digits", "shapes"),
        seeds=(0, 1, 2),
        train=CPU_TRAIN,
        train_by_method=CPU_SIREN_LR,
        model_by_dim=CPU_MODELS,
        model_by_dataset=CPU_BY_DATASET,
        # the deepest baselines keep their depth (the method) but get thinner stages
        model_by_method={"resnet56": dict(width=4), "resnet110": dict(width=4)},
        data={"shapes": dict(resolution=16, n_train=1500, n_test=500)},
        tags=("suite:cpu-full",),
    ),
    Suite(
        name="cpu-tune",
        description="the cpu suite's families with an equal search: 4 learning rates each, selected on validation "
        "(CPU, about 30 min on 2 cores)",
        methods=CPU_FAMILIES,
        datasets=("mnist1d", "digits"),
        seeds=(0, 1, 2),
        train=CPU_TRAIN,
        model_by_dim=CPU_MODELS,
        model_by_dataset=CPU_BY_DATASET,
        tune={"*": {"train.lr": (1e-3, 3e-3, 1e-2, 3e-2)}},  # the same 4 trials for every method, SIREN nets too
        tags=("suite:cpu-tune",),
    ),
    Suite(
        name="smoke",
        description="every method on digits and sdigits, a few steps of a tiny model (< 60 s; used by the tests)",
        datasets=("digits", "sdigits"),
        train=dict(epochs=1, batch_size=32, max_steps_per_epoch=3, eval_batch_size=512),
        model_by_dim={1: dict(arch="flextcn2", width=4, dropout=0.0), 2: dict(arch="flexnet3", width=4, dropout=0.0)},
        tags=("smoke",),
    ),
)
