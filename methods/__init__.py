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

import functools
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from bench.base import Entry, Registry, UserError
from methods._builtin import BUILTIN_METHODS
from methods.card import MethodCard
from methods.task import TaskSpec

__all__ = [
    "Hparam",
    "MethodCard",
    "TaskSpec",
    "accepted_hparams",
    "build_model",
    "check_hparams",
    "get_method",
    "hparam_annotations",
    "hparams_of",
    "list_methods",
    "register_method",
    "skip_reason",
    "METHODS",
]

METHODS = Registry("method", "lksbench.methods", BUILTIN_METHODS)


def register_method(name: str, kind: str = "layer", **card: Any) -> Callable:
    """Decorator: register a layer or model factory, or a class, under `name` with its card.

    Its signature is the one declaration of the method's hparams (`hparams_of`). The registered callable
    refuses a task its card does not support (a dim, causal or non-causal), also when a decorated function
    is called directly; a decorated class is returned unchanged (it stays subclassable).
    """
    full = MethodCard.make(kind=kind, **card)  # validates the card's keys and values

    def decorator(factory: Callable) -> Callable:
        checked = METHODS.register(name, card=full)(_refusing_unsupported(factory, name, full))
        return factory if isinstance(factory, type) else checked

    return decorator


def _refusing_unsupported(factory: Callable, name: str, card: MethodCard) -> Callable:
    @functools.wraps(factory)  # keeps the signature: hparams_of reads it through __wrapped__
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


@dataclass(frozen=True)
class Hparam:
    name: str
    annotation: str  # as written, e.g. "int" or "float | None"; "" when not annotated
    default: Any
    doc: str = ""  # the comment that ends its line in the signature


@functools.cache  # read once per function: hparams_of is asked once per run of a grid
def _docs(fn: Callable) -> dict[str, str]:
    """The comment that ends each parameter's line in `fn`'s signature: `dilated_size: int = 7,  # doc`."""
    try:
        lines, _ = inspect.getsourcelines(fn)
    except (OSError, TypeError):  # no source (e.g. typed at a prompt): no docs
        return {}
    docs: dict[str, str] = {}
    for line in lines:
        found = re.match(r"\s*(\w+)\s*(?::[^=#]*)?(?:=[^#]*)?,\s*#\s*(.*\S)", line)
        if found:
            docs[found[1]] = found[2]
        if re.search(r"\)\s*(->[^#]*)?:\s*(#.*)?$", line):  # the signature's end
            break
    return docs


def _declared(obj: Callable, skip: tuple[str, ...] = ()) -> dict[str, Hparam] | None:
    """The keyword parameters with a default of a factory or a class's __init__ (first declaration wins). A class
    whose __init__ takes **kwargs passes them to its parent's __init__, or to the class its `passes_kwargs_to`
    names: their parameters are added. None when a factory takes **kwargs (it takes any)."""
    obj, out = inspect.unwrap(obj), {}
    while True:
        cls = next((c for c in obj.__mro__ if "__init__" in vars(c)), None) if isinstance(obj, type) else None
        inits = [vars(c)["__init__"] for c in reversed(obj.__mro__[:-1]) if "__init__" in vars(c)] if cls else [obj]
        docs = {k: v for fn in inits for k, v in _docs(fn).items()}  # a subclass's wins
        params = inspect.signature(cls.__init__ if cls else obj).parameters
        for p in params.values():
            if p.default is not inspect.Parameter.empty and p.name not in skip and p.name not in out:
                annotation = "" if p.annotation is inspect.Parameter.empty else p.annotation
                annotation = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
                out[p.name] = Hparam(p.name, annotation, p.default, docs.get(p.name, ""))
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return out
        if cls is None or cls is object:
            return None
        obj = vars(cls).get("passes_kwargs_to") or cls.__mro__[1]


def hparams_of(name: str, backbone: bool = True) -> dict[str, Hparam] | None:
    """What `build_model(name, ...)` accepts: each hparam's name, annotation, default and doc, as its factory
    (or class) declares them, and for a layer method (`backbone=True`) the backbone's; None when the factory
    takes any keyword (**kwargs)."""
    from methods.backbones import BACKBONE_HPARAMS, build_backbone  # imported here: it imports torch

    entry = get_method(name)
    own = _declared(entry.obj, skip=("dim", "causal", "size"))
    if own is None or not backbone or entry.card.kind != "layer":
        return own
    return {**own, **{k: v for k, v in _declared(build_backbone).items() if k in BACKBONE_HPARAMS and k not in own}}


def accepted_hparams(name: str) -> set[str] | None:
    """The hparams `build_model(name, ...)` takes, or None when its factory takes any (**kwargs)."""
    hparams = hparams_of(name)
    return None if hparams is None else set(hparams)


def hparam_annotations(name: str) -> dict[str, str]:
    """The annotation (as written, e.g. "int" or "float | None") of every annotated hparam `name` takes."""
    return {k: h.annotation for k, h in (hparams_of(name) or {}).items() if h.annotation}


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
    from methods import backbones, kernelbank  # imported here: torch is not needed to list methods

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
    kernelbank.link(model)  # its continuous-kernel layers evaluate their kernel nets in one batched call
    return model
