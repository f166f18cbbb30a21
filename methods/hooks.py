"""The optional hooks a module may have, all duck-typed, and the harness's helpers that call them.

Any nn.Module inside a model (usually a layer) may define:

- `regularization_loss() -> Tensor`: a scalar added to the training loss (e.g. FlexConv's
  anti-aliasing term, N-Jet's sigma penalty). A module may say with `regularizes = False` (an
  attribute or property) that its terms are off: the step then skips the call and its ops.
- `size_parameters() -> list[Parameter]`: its own parameters that shape the receptive field
  rather than weigh inputs (sigmas, positions, mask means/widths). They are also the layer's
  own optimizer group, declared once with two attributes: `size_lr_factor` (default 1: the
  group's lr is that times the base lr) and `size_weight_decay` (default False: no weight
  decay on them; True keeps the protocol's). The cost report counts "weights-only"
  parameters without them.
- `param_groups(base_lr) -> list[dict]`: optimizer groups for *its own* parameters, where the
  size group above does not say it (e.g. two groups at different rates); it replaces that
  group. Parameters no module claims go to the default group (base lr, the protocol's
  weight decay).
- `post_step()`: called after every optimizer step (e.g. clamp DCLS positions).
- `host_tensors() -> list[Tensor]`: tensors computed from the module's own parameters whose
  values its next forward needs as Python numbers (FlexConv's crop, N-Jet's support). The module
  reads them with `host_values(self)`, never with `.item()`/`.tolist()` in its forward: after every
  optimizer step, `StepHooks.post_step` copies those of the whole model to the host in one batched
  read, so a training step's forward and backward never wait for the device.
- `after_host_refresh()`: called after that batched read (FlexConv sets its next shape bucket from it).
- `kernel_sizes() -> float | list[float]`: the layer's effective kernel size in its own
  unit (one number, or one per spatial dimension); logged every epoch.
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
from torch.optim.optimizer import register_optimizer_step_post_hook

_optimizer_steps = 0  # optimizer steps taken in this process: host values cached before the last one are stale


def _count_step(optimizer, args, kwargs) -> None:
    global _optimizer_steps
    _optimizer_steps += 1


# fused AdamW updates parameters without bumping their version counters: count the steps instead
register_optimizer_step_post_hook(_count_step)


def _with(model: nn.Module, hook: str):
    for name, module in model.named_modules():
        fn = getattr(module, hook, None)
        if callable(fn):
            yield name, fn


class StepHooks:
    """The hooks called at every training step, found once per run: walking the modules each step
    costs more than a small model's arithmetic."""

    def __init__(self, model: nn.Module):
        # a module whose `regularizes` attribute is False (its terms switched off) adds nothing: no ops
        self.regularizers = [(m, m.regularization_loss) for m in model.modules()
                             if callable(getattr(m, "regularization_loss", None))]  # fmt: skip
        self.post_steps = [fn for _, fn in _with(model, "post_step")]
        self.host_modules = [m for m in model.modules() if callable(getattr(m, "host_tensors", None))]
        self.after_refresh = [fn for _, fn in _with(model, "after_host_refresh")]

    def regularization_loss(self) -> torch.Tensor | None:
        terms = [fn() for m, fn in self.regularizers if getattr(m, "regularizes", True)]
        return torch.stack([t.reshape(()) for t in terms]).sum() if terms else None

    def post_step(self) -> None:
        for fn in self.post_steps:
            fn()
        if self.host_modules:  # after the hooks above, which may change parameters (DCLS clamps)
            refresh_host_values(self.host_modules)
        for fn in self.after_refresh:  # hooks that read host values (FlexConv's shape bucket): no read of their own
            fn()


def _host_key(module: nn.Module) -> tuple:
    """What the module's host values depend on: its own tensors (storage, in-place version) and the optimizer steps."""
    own = (*module._parameters.values(), *module._buffers.values())
    return _optimizer_steps, tuple((t._version, t.data_ptr()) for t in own if t is not None)


def _to_python(tensors: list[torch.Tensor]) -> list:
    """The tensors' tolist() values, through one device-to-host copy per device."""
    out: list = [None] * len(tensors)
    by_device: dict = {}
    for i, t in enumerate(tensors):
        by_device.setdefault(t.device, []).append(i)
    for indices in by_device.values():
        if all(tensors[i].dim() == 0 for i in indices):  # scalars (sigmas): one stack, not a view of each and a cat
            flat = torch.stack([tensors[i] for i in indices]).tolist()
        else:
            flat = torch.cat(
                [tensors[i] if tensors[i].dim() == 1 else tensors[i].reshape(-1) for i in indices]
            ).tolist()
        at = 0
        for i in indices:
            n, t = tensors[i].numel(), tensors[i]
            vals = flat[at : at + n]
            at += n
            if not (t.dtype.is_floating_point or t.dtype.is_complex):
                vals = [int(v) for v in vals]
            out[i] = vals[0] if t.dim() == 0 else vals if t.dim() == 1 else torch.tensor(vals).view(t.shape).tolist()
    return out


def refresh_host_values(modules: list[nn.Module]) -> None:
    """Copy the host values of all `modules` in one batched read (per device)."""
    with torch.no_grad():
        parts = [(m, _host_key(m), list(m.host_tensors())) for m in modules]
    values = _to_python([t for _, _, ts in parts for t in ts])
    at = 0
    for module, key, ts in parts:
        module.__dict__["_host_values"] = (key, values[at : at + len(ts)])
        at += len(ts)


def host_values(module: nn.Module) -> list:
    """The module's `host_tensors()` as Python values (each one's tolist()), from the copy made after the last
    optimizer step; read now (a host synchronisation) only when its parameters changed since that copy."""
    cached = module.__dict__.get("_host_values")
    if cached is None or cached[0] != _host_key(module):
        refresh_host_values([module])
        cached = module.__dict__["_host_values"]
    return cached[1]


def forget_host_values(module: nn.Module) -> None:
    """Drop the module's cached host values (when something they depend on, besides its tensors, changes)."""
    module.__dict__.pop("_host_values", None)


def regularization_loss(model: nn.Module) -> torch.Tensor | None:
    return StepHooks(model).regularization_loss()


def size_group(module: nn.Module, base_lr: float) -> dict:
    """The optimizer group a layer declares through size_parameters(), size_lr_factor and size_weight_decay."""
    group = {"params": list(module.size_parameters()), "lr": getattr(module, "size_lr_factor", 1.0) * base_lr}
    return group if getattr(module, "size_weight_decay", False) else {**group, "weight_decay": 0.0}


def own_groups(module: nn.Module, base_lr: float) -> list[dict]:
    """A module's own optimizer groups: its param_groups hook, else its declared size group, else none."""
    if callable(getattr(module, "param_groups", None)):
        return module.param_groups(base_lr)
    if callable(getattr(module, "size_parameters", None)):
        return [size_group(module, base_lr)]
    return []


def size_parameters(model: nn.Module) -> tuple[set[int], str]:
    """ids of the trainable parameters that set kernel sizes/shapes/positions, and the rule used: a module's
    size_parameters() hook, else the parameters of its own optimizer groups (its param_groups hook)."""
    found: set[int] = set()
    rules: set[str] = set()
    for module in model.modules():
        if callable(getattr(module, "size_parameters", None)):
            found.update(id(p) for p in module.size_parameters())
            rules.add("size_parameters hooks")
        elif callable(getattr(module, "param_groups", None)):
            found.update(id(p) for group in own_groups(module, 1.0) for p in group["params"])
            rules.add("param_groups hooks")
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    return found & trainable, " + ".join(sorted(rules)) or "no size parameters"


def param_groups(model: nn.Module, base_lr: float, weight_decay: float) -> list[dict]:
    groups, claimed = [], set()
    for module in model.modules():
        for group in own_groups(module, base_lr):
            params = [p for p in group["params"] if p.requires_grad and id(p) not in claimed]
            claimed.update(id(p) for p in params)
            if params:
                groups.append({"weight_decay": weight_decay, **group, "params": params})
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in claimed]
    return [{"params": rest, "lr": base_lr, "weight_decay": weight_decay}, *groups]


def merge_equal_groups(groups: list[dict]) -> list[dict]:
    """Groups with the same settings as one group each, in order of first appearance.

    The optimizer's step is an elementwise update with each group's settings, so merging changes no number;
    but a fused or foreach AdamW runs two kernels per group: one group per layer (a network of 15 S4D
    layers has 16) is 32 launches a step where 4 do.
    """
    merged: dict[str, dict] = {}
    for group in groups:
        options = repr(sorted((k, v) for k, v in group.items() if k != "params"))  # values may be unhashable
        target = merged.setdefault(options, {**group, "params": []})
        target["params"] = [*target["params"], *group["params"]]
    return list(merged.values())


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
