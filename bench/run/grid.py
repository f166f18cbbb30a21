"""The grid: a suite plus the command line's selection, expanded into RunConfigs.

Pairs a method cannot run (its card says so) are listed with the reason, not run.
Order is dataset, seed, method, so one dataset stays loaded while every method trains on it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace
from typing import Any

import datasets
import methods
from bench.base import UserError
from bench.run.config import RunConfig, TrainConfig, coerce_annotated, with_train
from bench.run.suite import Suite, Variant


@dataclass
class Grid:
    runs: list[RunConfig] = field(default_factory=list)
    unsupported: list[tuple[str, str, str]] = field(default_factory=list)  # (method, dataset, reason)


def expand_datasets(patterns: tuple[str, ...] | list[str]) -> list[str]:
    names: list[str] = []
    for pat in patterns:
        if pat == "@embedded":
            hits = [n for n in datasets.list_datasets() if datasets.get_entry(n).card.source == "embedded"]
        else:
            hits = datasets.DATASETS.select([pat])
        names += [n for n in hits if n not in names]
    return names


MAX_SEED = 2**31 - 1  # numpy and torch take any seed below this; larger ones are typos
MAX_RUNS = 100_000  # a grid this size is a typo too (a list of seeds, not a range): refused before it is built


def parse_seeds(text: str) -> tuple[int, ...]:
    """`0,1,2` or `0-4` (or a mix: `0-2,7`); bounded, and checked before any range is expanded."""
    parts: list[tuple[int, int]] = []
    try:
        for part in text.split(","):
            lo, dash, hi = part.strip().partition("-")
            parts.append((int(lo), int(hi) if dash else int(lo)))
    except ValueError:
        raise UserError(f"--seeds expects e.g. 0,1,2 or 0-4, got {text!r}") from None
    if not parts or any(lo < 0 or hi < lo for lo, hi in parts):
        raise UserError(f"--seeds must name at least one non-negative seed, ranges low-high, got {text!r}")
    if any(hi > MAX_SEED for _, hi in parts):
        raise UserError(f"--seeds: a seed must be at most {MAX_SEED:,}, got {text!r}")
    if sum(hi - lo + 1 for lo, hi in parts) > MAX_RUNS:
        raise UserError(f"--seeds {text}: more than {MAX_RUNS:,} seeds; name fewer")
    return tuple(dict.fromkeys(s for lo, hi in parts for s in range(lo, hi + 1)))


def _apply_user(section: str, user: dict[str, Any], targets: list[str], accepts,
                annotations) -> dict[str, dict[str, Any]]:  # fmt: skip
    """User overrides go to every target that takes them, converted to the type it declares; a key that no
    target takes, or a value of the wrong type, is an error."""
    applied: dict[str, dict[str, Any]] = {t: {} for t in targets}
    for key, value in user.items():
        takers = [t for t in targets if accepts(t, key)]
        if not takers:
            raise UserError(f"--set {section}.{key}: none of {', '.join(targets)} takes {key!r}")
        for t in takers:
            annotation = annotations(t).get(key)
            label = f"--set {section}.{key}"
            applied[t][key] = value if annotation is None else coerce_annotated(label, value, annotation)
    return applied


def _method_takes(name: str, key: str) -> bool:
    accepted = methods.accepted_hparams(name)
    return accepted is None or key in accepted


def check_models(grid: Grid, overrides: dict[str, dict[str, Any]] | None = None) -> None:
    """Build every distinct (method, task, hparams) of the grid once, without data or training: a setting a
    constructor refuses is a UserError naming it, before the first run starts."""
    import torch

    user = (overrides or {}).get("model", {})
    seen = set()
    for cfg in grid.runs:
        task = datasets.get_entry(cfg.dataset).card.task_for(cfg.data)
        key = (cfg.method, task, repr(sorted(cfg.model.items())))
        if key in seen:
            continue
        seen.add(key)
        try:
            with torch.no_grad():
                methods.build_model(cfg.method, task, **cfg.model)
        except Exception as exc:
            mine = [f"model.{k}={cfg.model[k]!r}" for k in user if k in cfg.model]
            what = f"--set {', '.join(mine)}: " if mine else ""
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UserError(f"{what}{cfg.method} on {cfg.dataset} cannot be built: {message}") from None


def build_grid(
    suite: Suite,
    *,
    methods_sel: list[str] | None = None,
    datasets_sel: list[str] | None = None,
    seeds: tuple[int, ...] | None = None,
    epochs: int | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    budget: float = 1.0,
    tune: dict[str, list] | None = None,
) -> Grid:
    """The suite's runs for the selection; with a search space (the suite's `tune`, and --tune over it), every
    (method, dataset, seed) becomes one trial per combination of the searched values."""
    overrides = overrides or {"train": {}, "model": {}, "data": {}}
    if not 0 < budget <= 1:
        raise UserError(f"--budget must be in (0, 1], got {budget}")
    if epochs is not None and epochs < 1:
        raise UserError(f"--epochs must be >= 1, got {epochs}")
    method_names = methods.METHODS.select(methods_sel or list(suite.methods))
    dataset_names = expand_datasets(datasets_sel or list(suite.datasets))
    if not method_names or not dataset_names:
        raise UserError("the selection is empty: no method or no dataset chosen")
    spaces = {m: {**suite.tune.get("*", {}), **suite.tune.get(m, {}), **(tune or {})} for m in method_names}
    trials = max(math.prod(len(v) for v in space.values()) for space in spaces.values())
    # each dataset once per variant of it (bench/run/suite.py Variant), or once
    pairs = [(d, v) for d in dataset_names for v in suite.variants.get(d) or (None,)]
    size = len(method_names) * len(pairs) * len(seeds or suite.seeds) * trials
    if size > MAX_RUNS:
        raise UserError(f"the grid would have {size:,} runs (more than {MAX_RUNS:,}); choose fewer methods, "
                        "datasets or seeds")  # fmt: skip
    user_model = _apply_user("model", overrides["model"], method_names, _method_takes, methods.hparam_annotations)
    user_data = _apply_user("data", overrides["data"], dataset_names, lambda d, k: datasets.loader_options(d).takes(k),
                            lambda d: datasets.loader_options(d).annotations)  # fmt: skip
    base_train = with_train(TrainConfig(), **suite.train)
    marked = ("budget",) if budget < 1 else ()

    grid = Grid()
    for dname, variant in pairs:
        card = datasets.get_entry(dname).card
        stub = card.task_for({})
        if variant is not None:
            check_variant(dname, variant)
        first = variant is None or variant is suite.variants[dname][0]  # unsupported pairs are listed once
        data = {**suite.data.get(dname, {}), **(variant.data if variant else {}), **user_data[dname]}
        crossres = dict(variant.crossres or suite.crossres) if variant else dict(suite.crossres)
        tags = (*suite.tags, *((variant.tag,) if variant else ()), *marked)
        for seed in seeds or suite.seeds:
            for mname in method_names:
                only = suite.datasets_by_method.get(mname)
                if only is not None and dname not in only and not methods_sel:
                    continue  # the paper ran this method on some datasets only; naming it with --methods overrides
                reason = methods.skip_reason(mname, stub)
                if reason:
                    if seed == (seeds or suite.seeds)[0] and first:
                        grid.unsupported.append((mname, dname, reason))
                    continue
                suite_hp = {**suite.model_by_dim.get(card.dim, {}), **suite.model_by_dataset.get(dname, {}),
                            **suite.model_by_method.get(mname, {}),
                            **suite.model_by_method_dataset.get(mname, {}).get(dname, {}),
                            **(variant.model if variant else {})}  # fmt: skip
                hp = {k: v for k, v in suite_hp.items() if _method_takes(mname, k)}
                hp.update(user_model[mname])
                methods.check_hparams(mname, hp)
                # the user's settings win over the suite's per-dataset and per-method ones
                train = {**suite.train_by_dataset.get(dname, {}), **suite.train_by_method.get(mname, {}),
                         **overrides["train"], **({"epochs": epochs} if epochs is not None else {})}  # fmt: skip
                base = RunConfig(mname, dname, seed, hp, data, with_train(base_train, **train), budget, crossres,
                                 tags)  # fmt: skip
                if spaces[mname] and base.train.selection == "paper":
                    raise UserError("--tune selects on the validation split; the paper selection has none (its "
                                    "validation set is the test set): tune with --selection val")  # fmt: skip
                grid.runs += trials_of(base, spaces[mname]) if spaces[mname] else [base]
    return grid


def check_variant(dataset: str, variant: Variant) -> None:
    """A variant's loader options are ones the dataset takes (a suite's typo fails before any run)."""
    options = datasets.loader_options(dataset)
    unknown = [k for k in variant.data if not options.takes(k)]
    if unknown:
        raise UserError(f"variant {variant.label!r}: dataset {dataset!r} has no option {', '.join(map(repr, unknown))}")


def trials_of(base: RunConfig, space: dict[str, list]) -> list[RunConfig]:
    """One RunConfig per combination of the space's values, each checked like --set and carrying the space."""
    out = []
    for combo in itertools.product(*space.values()):
        cfg = base
        for key, value in zip(space, combo):
            section, _, name = key.partition(".")
            label = f"--tune {key}"
            if section == "train":
                cfg = replace(cfg, train=with_train(cfg.train, **{name: value}))
            elif section == "model":
                if not _method_takes(cfg.method, name):
                    raise UserError(f"{label}: method {cfg.method!r} does not take {name!r}")
                annotation = methods.hparam_annotations(cfg.method).get(name)
                cfg = replace(cfg, model={**cfg.model, name: coerce_annotated(label, value, annotation) if annotation
                                          else value})  # fmt: skip
            else:
                accepts = datasets.loader_options(cfg.dataset)
                if not accepts.takes(name):
                    raise UserError(f"{label}: dataset {cfg.dataset!r} has no option {name!r}")
                annotation = accepts.annotations.get(name)
                cfg = replace(cfg, data={**cfg.data, name: coerce_annotated(label, value, annotation) if annotation
                                         else value})  # fmt: skip
        out.append(replace(cfg, search={k: list(v) for k, v in space.items()}))
    return out
