"""The method registry: `register_method`, `list_methods`, `get_method`, `build_model`.

A *layer* method is a factory
    (in_channels, out_channels, *, dim, causal, size, **hparams) -> nn.Module
mapping (B, C, L) or (B, C, H, W) to the same spatial size; `build_model` drops it
into the shared backbones (methods/backbones.py). A *model* method is a factory
    (task: TaskSpec, **hparams) -> nn.Module
that builds the whole network. Optional hooks a module may have are listed in
methods/hooks.py. Importing this package imports no method's code: built-ins are
registered lazily (methods/_builtin.py) and plugins through the entry-point group
`lksbench.methods` or `--plugin`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from bench.base import Entry, Registry, UserError
from methods._builtin import BUILTIN_METHODS
from methods.card import MethodCard
from methods.task import TaskSpec

__all__ = [
    "MethodCard",
    "TaskSpec",
    "accepted_hparams",
    "build_model",
    "check_hparams",
    "get_method",
    "hparam_annotations",
    "list_methods",
    "register_method",
    "skip_reason",
    "METHODS",
]

METHODS = Registry("method", "lksbench.methods", BUILTIN_METHODS)


def register_method(name: str, kind: str = "layer", **card: Any) -> Callable:
    """Decorator: register a layer or model factory under `name` with its card.

    The factory is wrapped so that it refuses a task its card does not support (a dim, causal or
    non-causal), also when it is called directly rather than through `build_model`.
    """
    full = MethodCard.make(kind=kind, **card)  # validates the card's keys and values

    def decorator(factory: Callable) -> Callable:
        return METHODS.register(name, card=full)(_refusing_unsupported(factory, name, full))

    return decorator


def _refusing_unsupported(factory: Callable, name: str, card: MethodCard) -> Callable:
    import functools
    from types import SimpleNamespace

    @functools.wraps(factory)  # keeps the signature: accepted_hparams reads it through __wrapped__
    def checked(*args, **kwargs):
        if card.kind == "model":
            task = kwargs["task"] if "task" in kwargs else args[0]
        else:  # a layer gets the task's dim and causality as keywords
            task = SimpleNamespace(dim=kwargs.get("dim"), causal=bool(kwargs.get("causal")))
        reason = card.skip_reason(task)
        if reason:
            raise UserError(f"method {name!r} cannot run on this task: {reason}")
        return factory(*args, **kwargs)

    return checked


def list_methods(pattern: str | None = None) -> list[str]:
    return METHODS.list(pattern)


def get_method(name: str) -> Entry:
    """The registry entry: `.obj` (the factory) and `.card` (its MethodCard)."""
    return METHODS.get(name)


def card_of(name: str) -> MethodCard:
    return get_method(name).card


def skip_reason(name: str, task: TaskSpec) -> str | None:
    """Why `name` cannot run on `task` (from its card), or None if it can."""
    return card_of(name).skip_reason(task)


def accepted_hparams(name: str) -> set[str] | None:
    """The hparams `build_model(name, ...)` takes, or None when its factory takes any (**kwargs)."""
    from methods.backbones import BACKBONE_HPARAMS

    entry = get_method(name)
    params = inspect.signature(entry.obj).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    own = {n for n, p in params.items() if p.default is not inspect.Parameter.empty}
    own -= {"dim", "causal", "size"}
    return own | set(BACKBONE_HPARAMS) if entry.card.kind == "layer" else own


def hparam_annotations(name: str) -> dict[str, str]:
    """The annotation (as written, e.g. "int" or "float | None") of every hparam `name`'s factory takes."""
    from methods.backbones import build_backbone

    entry = get_method(name)
    sources = [entry.obj] + ([build_backbone] if entry.card.kind == "layer" else [])
    out: dict[str, str] = {}
    for fn in sources:
        for pname, p in inspect.signature(fn).parameters.items():
            if p.annotation is not inspect.Parameter.empty and p.default is not inspect.Parameter.empty:
                out.setdefault(pname, p.annotation if isinstance(p.annotation, str) else p.annotation.__name__)
    return out


def check_hparams(name: str, hparams: dict[str, Any]) -> None:
    accepted = accepted_hparams(name)
    unknown = sorted(set(hparams) - accepted) if accepted is not None else []
    if unknown:
        raise UserError(
            f"method {name!r} does not take hyperparameter(s) {', '.join(unknown)}; "
            f"it takes: {', '.join(sorted(accepted)) or 'none'}"
        )


def build_model(method: str, task: TaskSpec, **hparams: Any):
    """Build the network for `task`: a model method builds it itself, a layer method goes into a backbone."""
    from methods import backbones  # imported here: torch is not needed to list methods

    entry = get_method(method)
    card: MethodCard = entry.card
    reason = card.skip_reason(task)
    if reason:
        raise UserError(f"method {method!r} cannot run on this task: {reason}")
    hparams = {k: v for k, v in hparams.items() if v is not None}  # as timm: None means "use the default"
    hparams = {**card.defaults, **hparams}
    check_hparams(method, hparams)
    if card.kind == "model":
        model = entry.obj(task, **hparams)
    else:
        backbone_hp = {k: hparams.pop(k) for k in backbones.BACKBONE_HPARAMS if k in hparams}
        model = backbones.build_backbone(entry.obj, task, layer_hparams=hparams, **backbone_hp)
    model.task = task
    from methods import kernelbank

    kernelbank.link(model)  # its continuous-kernel layers evaluate their kernel nets in one batched call
    return model
