"""Matched comparisons: `--match params|flops[=TARGET]` scales each run's backbone width to a budget.

For every run whose method takes `width` (layer methods through the backbone, and model methods
that declare it), the width is the one whose model comes closest to the target: trainable
parameters (`params`) or forward FLOPs of one sample at the dataset's input size (`flops`, the
report's counter, bench/run/measure.py). The target is a number (`params=100000`), or, when not
given, what the plain `conv` method has at that run's own backbone settings on that dataset: every
method is then compared with a conv of the suite's size. The search builds models only (no data,
no training); count(width) is increasing, so it bisects.

Matched runs carry the tag `matched-params` or `matched-flops` (summary tables mark them, so a
table says which budget its rows were matched at) and their chosen width in `model.width`, which
is part of the run id: a matched run never reuses an unmatched one. A method without `width` is
left as it is and reported.
"""

from __future__ import annotations

import dataclasses

import torch

import datasets
import methods
from bench.base import UserError
from bench.run.measure import count_flops
from methods.backbones import BACKBONE_HPARAMS

KINDS = ("params", "flops")
MAX_WIDTH = 1024


def parse_match(text: str) -> tuple[str, float | None]:
    kind, sep, value = text.partition("=")
    kind = kind.strip()
    if kind not in KINDS:
        raise UserError(f"--match takes params or flops, optionally =TARGET (e.g. params=100000); got {text!r}")
    if not sep:
        return kind, None
    try:
        target = float(value)
    except ValueError:
        raise UserError(f"--match {kind}=TARGET needs a number, got {value!r}") from None
    if not target > 0:
        raise UserError(f"--match {kind}=TARGET must be > 0, got {value!r}")
    return kind, target


def measure(method: str, task, model: dict, kind: str) -> float:
    torch.manual_seed(0)
    net = methods.build_model(method, task, **model)
    if kind == "params":
        return float(sum(p.numel() for p in net.parameters() if p.requires_grad))
    sample = torch.zeros(1, *task.input_shape)
    return float(count_flops(net, sample)[0])


def width_for(method: str, task, model: dict, kind: str, target: float) -> tuple[int, float]:
    """The width (1..MAX_WIDTH) whose count is closest to `target` (ties: the smaller), and that count."""
    cache: dict[int, float] = {}

    def count(w: int) -> float:
        if w not in cache:
            cache[w] = measure(method, task, {**model, "width": w}, kind)
        return cache[w]

    lo, hi = 1, 2
    while count(hi) < target and hi < MAX_WIDTH:
        lo, hi = hi, min(2 * hi, MAX_WIDTH)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if count(mid) < target else (lo, mid)
    best = lo if abs(count(lo) - target) <= abs(count(hi) - target) else hi
    return best, count(best)


def apply_match(runs: list, spec: str) -> tuple[list, list[str]]:
    """The runs with their widths matched to the budget, and one line per (method, dataset) saying what was done."""
    kind, fixed = parse_match(spec)
    out, lines, chosen = [], [], {}
    for cfg in runs:
        task = datasets.get_entry(cfg.dataset).card.task_for(cfg.data)
        accepted = methods.accepted_hparams(cfg.method)
        if accepted is not None and "width" not in accepted:
            key = (cfg.method, cfg.dataset, "no width")
            if key not in chosen:
                chosen[key] = None
                lines.append(f"  match {kind}: {cfg.method} on {cfg.dataset} takes no width: left as it is")
            out.append(cfg)
            continue
        target = fixed
        if target is None:
            backbone = {k: v for k, v in cfg.model.items() if k in BACKBONE_HPARAMS}
            target = measure("conv", task, backbone, kind)
        key = (cfg.method, cfg.dataset, repr(sorted(cfg.model.items())), target)
        if key not in chosen:
            width, got = width_for(cfg.method, task, {k: v for k, v in cfg.model.items() if k != "width"}, kind, target)
            chosen[key] = width
            far = " (the nearest width: none comes within 25 %)" if abs(got - target) > 0.25 * target else ""
            lines.append(f"  match {kind}: {cfg.method} on {cfg.dataset}: width {width} ({got:,.0f} {kind}; "
                         f"target {target:,.0f}){far}")  # fmt: skip
        tag = f"matched-{kind}"
        out.append(dataclasses.replace(cfg, model={**cfg.model, "width": chosen[key]},
                                       tags=cfg.tags + (() if tag in cfg.tags else (tag,))))  # fmt: skip
    return out, lines
