"""The cross-resolution protocol (FlexConv paper, Table 4; methods.md A.5), as a post-training step.

A run whose config has `crossres` settings is trained as usual at the source resolution (its
`data` options); then, without retraining, it is tested at the target resolution ("out of the
box", OOTB), and optionally fine-tuned there under the same protocol and tested again. Methods
whose card says `resolution_change` are told the ratio through `hooks.change_resolution`
(FlexConv resamples its continuous kernel, N-Jet scales sigma); every other method keeps its
discrete kernels on the bigger image, the paper's treatment of the Conv and ResNet baselines.

Settings (RunConfig.crossres): `target` (the target resolution in pixels, required; for sequences the target
length in steps, or the target `sr` for datasets sized by their sr option, see size_option) and
`finetune_epochs` (default 0, scaled by the run's budget like the training epochs). The source
is the run's own `resolution` dataset option (or, unset, the one its loader reports); for a sequence dataset
(card dim 1) the `length` option instead: the sampling-rate version of the protocol (mnist1d: train at 40 steps,
test at 80 or 20; the ratio target/source is what `change_resolution` is told).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

import datasets
import methods
from bench.base import UserError
from bench.run.config import RunConfig, with_train
from bench.run.protocol import autocast_for, evaluate, train_run
from methods import hooks

DEFAULTS = {"target": None, "finetune_epochs": 0}


def check_settings(crossres: dict[str, Any]) -> dict[str, Any]:
    """The settings with defaults filled in; a UserError for unknown keys or bad values."""
    unknown = sorted(set(crossres) - set(DEFAULTS))
    if unknown:
        raise UserError(f"crossres: unknown setting(s) {', '.join(unknown)}; known: {', '.join(DEFAULTS)}")
    s = {**DEFAULTS, **crossres}
    if not isinstance(s["target"], int) or s["target"] < 1:
        raise UserError(f"crossres.target must be a positive integer resolution, got {s['target']!r}")
    if not isinstance(s["finetune_epochs"], int) or s["finetune_epochs"] < 0:
        raise UserError(f"crossres.finetune_epochs must be an integer >= 0, got {s['finetune_epochs']!r}")
    return s


def size_option(cfg: RunConfig) -> str:
    """The data option that sets the size: `resolution` (pixels) for images; for sequences (card dim 1) `length`
    (steps: mnist1d's generator draws the same signals at another length) or, for a loader without it, `sr`
    (keep every sr-th step: sc_raw, char_trajectories, CKConv's sampling-rate experiments). Either gives the
    sampling-rate protocol: train at one rate, test zero-shot at another."""
    if datasets.get_entry(cfg.dataset).card.dim != 1:
        return "resolution"
    takes = datasets.loader_options(cfg.dataset).defaults
    return "sr" if "sr" in takes and "length" not in takes else "length"


def source_resolution(cfg: RunConfig, data) -> int:
    """The resolution (length, sr) the run trained at: its own data option, else what the loader reports."""
    option = size_option(cfg)
    fallback = {"length": data.task.size, "sr": 1}.get(option)
    value = cfg.data.get(option, data.info.get(option, fallback))
    if not isinstance(value, int):
        raise UserError(f"crossres: dataset {cfg.dataset!r} has no integer {option}; set data.{option}")
    return value


def size_ratio(cfg: RunConfig, source: int, target: int) -> float:
    """How many times longer (bigger) the target inputs are: target/source, or source/target for sr (a step)."""
    return source / target if size_option(cfg) == "sr" else target / source


def load_at(cfg: RunConfig, resolution: int, data_root=None, statistics=None):
    """The run's dataset (same seed, split and options) at another resolution.

    `statistics`: the source resolution's normalisation (its info["standardised"]); the model was
    trained on inputs normalised so, and a deployed model sees new images normalised the same way.
    """
    return datasets.get_dataset(cfg.dataset, seed=cfg.seed, val_fraction=cfg.train.val_fraction,
                                data_root=data_root, statistics=statistics, hold_out=cfg.train.selection != "paper",
                                **{**cfg.data, size_option(cfg): resolution})  # fmt: skip


def rescale(model: torch.nn.Module, method: str, ratio: float) -> str:
    """Prepare `model` for inputs `ratio` times bigger; returns what was done, for the run file."""
    if methods.card_of(method).resolution_change:
        return f"change_resolution({ratio:g}) on {hooks.change_resolution(model, ratio)} layers"
    return "same discrete kernels"


def metric_on_test(model: torch.nn.Module, data, cfg: RunConfig, device: str) -> float:
    autocast = autocast_for(cfg.train, device)
    return evaluate(model, data.test, data.task.metric, cfg.train.eval_batch_size, device, autocast)["metric"]


def evaluate_at(model: torch.nn.Module, cfg: RunConfig, resolution: int, *, source: int, device: str = "cpu",
                data_root=None, statistics=None) -> tuple[float, str, Any]:  # fmt: skip
    """Test a model trained under `cfg` at `source` px on the same dataset at `resolution` px, without retraining.

    The model is rescaled in place. Returns (test metric, what was done to the model, the target data).
    """
    target = load_at(cfg, resolution, data_root, statistics)
    treatment = rescale(model, cfg.method, size_ratio(cfg, source, resolution))
    if hasattr(model, "task"):
        model.task = target.task
    return metric_on_test(model, target, cfg, device), treatment, target


def add_cross_resolution(cfg: RunConfig, model, data, record: dict, device: str, data_root=None) -> None:
    """a post-training step (runner.post_train): record["crossres"] with the source, OOTB and fine-tuned test metrics.

    A failure after training (a layer that cannot run at the new size) is kept in
    record["crossres"]["error"]; the run's source-resolution results stay valid.
    """
    if not cfg.crossres:
        return
    s = check_settings(cfg.crossres)
    metric = data.task.metric
    source = source_resolution(cfg, data)
    out: dict[str, Any] = {"source_resolution": source, "target_resolution": s["target"],
                           "metric": metric, "source": record[f"test_{metric}"]}  # fmt: skip
    record["crossres"] = out
    try:
        ootb, out["treatment"], target = evaluate_at(model, cfg, s["target"], source=source, device=device,
                                                     data_root=data_root,
                                                     statistics=data.info.get("standardised"))  # fmt: skip
        out.update(ootb=ootb, delta=ootb - out["source"], kernel_sizes_target=hooks.kernel_sizes(model))
        if s["finetune_epochs"]:
            tuned = replace(cfg, train=with_train(cfg.train, epochs=s["finetune_epochs"]))
            results = train_run(tuned, target, device, progress=False, model=model)
            out.update(finetuned=results[f"test_{metric}"], finetune_epochs=results["epochs_run"],
                       finetune_best_epoch=results["best_epoch"], finetune_train_time_s=results["train_time_s"],
                       finetune_history=results["history"])  # fmt: skip
    except (UserError, KeyboardInterrupt):
        raise
    except Exception as exc:  # the source numbers stand; the table shows the target ones as failed
        out["error"] = f"{type(exc).__name__}: {exc}"
