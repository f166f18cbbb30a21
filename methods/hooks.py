"""The optional hooks a module may have, all duck-typed, and the harness's helpers that call them.

Any nn.Module inside a model (usually a layer) may define:

- `regularization_loss() -> Tensor`: a scalar added to the training loss (e.g. FlexConv's
  anti-aliasing term, N-Jet's sigma penalty).
- `param_groups(base_lr) -> list[dict]`: optimizer groups for *its own* parameters, e.g.
  `[{"params": [self.sigma], "lr": 0.1 * base_lr, "weight_decay": 0.0}]`. Parameters no
  module claims go to the default group (base lr, the protocol's weight decay).
- `post_step()`: called after every optimizer step (e.g. clamp DCLS positions).
- `kernel_sizes() -> float | list[float]`: the layer's effective kernel size in its own
  unit (one number, or one per spatial dimension); logged every epoch.
- `size_parameters() -> list[Parameter]`: its own parameters that shape the receptive field
  rather than weigh inputs (sigmas, positions, mask means/widths); the cost report counts
  "weights-only" parameters without them (else it uses what `param_groups` claims).
- `change_resolution(ratio: float)`: prepare to run on inputs `ratio` times the size the
  model was trained at (cross-resolution evaluation); only for methods whose card says
  `resolution_change=True`.

A layer may also set the attribute `normalises_output = True`: it normalises its own output,
and the shared backbones (methods/backbones.py) put no norm after it.

Each module reports only its own parameters and terms: the helpers below walk every
submodule, so a container must not aggregate its children's hooks.
"""

from __future__ import annotations

import torch
from torch import nn


def _with(model: nn.Module, hook: str):
    for name, module in model.named_modules():
        fn = getattr(module, hook, None)
        if callable(fn):
            yield name, fn


class StepHooks:
    """The hooks called at every training step, found once per run: walking the modules each step
    costs more than a small model's arithmetic."""

    def __init__(self, model: nn.Module):
        self.regularizers = [fn for _, fn in _with(model, "regularization_loss")]
        self.post_steps = [fn for _, fn in _with(model, "post_step")]

    def regularization_loss(self) -> torch.Tensor | None:
        terms = [fn() for fn in self.regularizers]
        return torch.stack([t.reshape(()) for t in terms]).sum() if terms else None

    def post_step(self) -> None:
        for fn in self.post_steps:
            fn()


def regularization_loss(model: nn.Module) -> torch.Tensor | None:
    return StepHooks(model).regularization_loss()


def param_groups(model: nn.Module, base_lr: float, weight_decay: float) -> list[dict]:
    groups, claimed = [], set()
    for _, fn in _with(model, "param_groups"):
        for group in fn(base_lr):
            params = [p for p in group["params"] if p.requires_grad and id(p) not in claimed]
            claimed.update(id(p) for p in params)
            if params:
                groups.append({"weight_decay": weight_decay, **group, "params": params})
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in claimed]
    return [{"params": rest, "lr": base_lr, "weight_decay": weight_decay}, *groups]


def post_step(model: nn.Module) -> None:
    StepHooks(model).post_step()


def kernel_sizes(model: nn.Module) -> dict[str, float | list[float]]:
    out = {}
    for name, fn in _with(model, "kernel_sizes"):
        value = fn()
        if isinstance(value, torch.Tensor):
            value = value.tolist()
        out[name or "model"] = [float(v) for v in value] if isinstance(value, (list, tuple)) else float(value)
    return out


def change_resolution(model: nn.Module, ratio: float) -> int:
    """Tell every layer that can rescale itself about a new input resolution; returns how many did."""
    hooks = list(_with(model, "change_resolution"))
    for _, fn in hooks:
        fn(ratio)
    return len(hooks)
