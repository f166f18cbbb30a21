"""The run configuration: frozen dataclasses, dotted `--set` overrides, and the run id.

A run is fully described by a RunConfig; its id is a hash of that config (never of
paths, devices or timestamps), so the same command finds its finished runs again.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from bench.base import UserError

PROTOCOL_VERSION = 2  # bump when the training protocol changes what a finished run means (2: one intra-op
# thread per CPU run, normalisation fitted after the validation carve, per-example test results in the record)


SELECTIONS = ("val", "paper")  # TrainConfig.selection
# settings added after run ids were first handed out: dropped from the id at these defaults, so a run that
# does not use them keeps the id it had before they existed
LATER_TRAIN_DEFAULTS = {"lr_decay_factor": 0.1, "stop_patience": 0, "selection": "val", "compile": "auto"}
COMPILE_MODES = ("auto", "off", "model", "graph")  # train.compile


@dataclass(frozen=True)
class TrainConfig:
    """One protocol for every method: AdamW, linear warm-up then cosine, selection on validation."""

    epochs: int = 10  # the most epochs a run trains: the cap, when patience stops it earlier
    patience: int = 0  # epochs without a better validation metric before a decay or the stop; 0: never stop
    lr_decays: int = 0  # on a plateau of `patience` epochs, multiply the lr by lr_decay_factor this many times
    lr_decay_factor: float = 0.1  # the lr's factor at each plateau decay (the CKConv paper's 1/5: 0.2)
    # > 0: stop after this many epochs without a better validation metric, counted from the best epoch whatever
    # the decays (the CKConv paper's 100, beside a plateau patience of 20); 0: stop when the decays are spent
    stop_patience: int = 0
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_epochs: float = 1.0
    min_lr_factor: float = 0.0  # cosine ends at lr * this
    grad_clip: float = 0.0  # max gradient norm; 0 turns clipping off
    max_steps_per_epoch: int = 0  # 0: whole epochs (the smoke suite caps them)
    eval_batch_size: int = 256
    val_fraction: float = 0.1  # carved from the training split, fixed by the seed
    amp: bool = True  # bf16 autocast, used only on CUDA
    deterministic: bool = False  # torch.use_deterministic_algorithms (slower on CUDA)
    # "val": train on the training part, select the checkpoint on the carved validation split, test once;
    # "paper": the FlexConv/CKConv code's own protocol: no carve (all training data), the dataset's own
    # validation split where it has one (Speech Commands), else the test set is the validation set, so the
    # result is the best test metric over epochs
    selection: str = "val"
    # torch.compile of the training step (bench/run/fastpath.py): auto (graph on CUDA where shapes are fixed or
    # bucketed, off on the CPU), off, model (inductor kernels), graph (inductor + CUDA graphs, mode reduce-overhead)
    compile: str = "auto"

    def validate(self) -> None:
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.patience >= 0, "patience must be >= 0 (0: no early stopping)"),
            (self.lr_decays >= 0, "lr_decays must be >= 0"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.eval_batch_size >= 1, "eval_batch_size must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.warmup_epochs >= 0, "warmup_epochs must be >= 0"),
            (0 <= self.min_lr_factor <= 1, "min_lr_factor must be in [0, 1]"),
            (self.grad_clip >= 0, "grad_clip must be >= 0"),
            (self.max_steps_per_epoch >= 0, "max_steps_per_epoch must be >= 0"),
            (0 < self.val_fraction < 1, "val_fraction must be in (0, 1)"),
            (0 < self.lr_decay_factor < 1, "lr_decay_factor must be in (0, 1)"),
            (self.stop_patience >= 0, "stop_patience must be >= 0 (0: stop when the decays are spent)"),
            (self.selection in SELECTIONS, f"selection must be one of {', '.join(SELECTIONS)}"),
            (self.compile in COMPILE_MODES, f"compile must be one of {', '.join(COMPILE_MODES)}, got {self.compile!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(f"train.{message}")


@dataclass(frozen=True)
class RunConfig:
    method: str
    dataset: str
    seed: int = 0
    model: dict[str, Any] = field(default_factory=dict)  # hparams for build_model
    data: dict[str, Any] = field(default_factory=dict)  # options for get_dataset
    train: TrainConfig = field(default_factory=TrainConfig)
    budget: float = 1.0  # fraction of the suite's epochs actually run (paper suites)
    crossres: dict[str, Any] = field(default_factory=dict)  # cross-resolution protocol settings (bench/run/crossres.py)
    tags: tuple[str, ...] = ()  # e.g. ("smoke",): rows that never enter a paper table unmarked
    # a trial of a tuning search: the whole space ({"train.lr": [1e-3, 1e-2]}), the same in every trial of it
    search: dict[str, list] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tags"] = list(self.tags)
        if not d["search"]:
            del d["search"]  # an untuned run keeps the id it had before searches existed
        for key, default in LATER_TRAIN_DEFAULTS.items():
            if d["train"][key] == default:
                del d["train"][key]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        d = dict(d)
        d["train"] = TrainConfig(**d.get("train", {}))
        d["tags"] = tuple(d.get("tags", ()))
        return cls(**d)

    @property
    def run_id(self) -> str:
        blob = json.dumps({"protocol": PROTOCOL_VERSION, **self.to_dict()}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        return f"{self.method} on {self.dataset} (seed {self.seed})"


def parse_value(text: str) -> Any:
    """A Python literal if it reads as one (3, 0.1, True, [1, 2]), else the string itself."""
    if text.lower() in ("true", "false", "none"):  # shell users write lower case
        return {"true": True, "false": False, "none": None}[text.lower()]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _coerce(label: str, value: Any, kind: type) -> Any:
    """`value` as `kind`, or a UserError starting with `label` (e.g. "--set train.lr")."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):  # 1e400 reads as inf: never a setting anyone means
                raise UserError(f"{label}: expected a finite number, got {value!r}")
            return float(value)
    elif isinstance(value, kind):
        return value
    raise UserError(f"{label}: expected {kind.__name__}, got {value!r}")


TRAIN_TYPES = {"int": int, "float": float, "bool": bool, "str": str}


def coerce_annotated(label: str, value: Any, annotation: str) -> Any:
    """`value` converted to a factory's or loader's annotated type ("int", "float | None", ...), or a UserError
    that names the setting; annotations other than int, float, bool, str and None pass the value through."""
    kinds = [part.strip() for part in annotation.split("|")]
    if value is None and "None" in kinds:
        return None
    known = [TRAIN_TYPES[k] for k in kinds if k in TRAIN_TYPES]
    if not known or len(known) < len([k for k in kinds if k != "None"]):
        return value  # a type this check does not know (a tuple, a Literal): the factory checks it
    for kind in known:
        try:
            return _coerce(label, value, kind)
        except UserError:
            continue
    raise UserError(f"{label}: takes {annotation}, got {value!r}")


def parse_overrides(items: list[str], flag: str = "--set") -> dict[str, dict[str, Any]]:
    """`train.lr=0.01 model.width=16 data.length=200` -> {"train": {...}, "model": {...}, "data": {...}}.

    train.* keys are checked against TrainConfig (name and type); model.* and data.* keys are
    checked against the chosen methods' and datasets' signatures when the grid is built.
    """
    out: dict[str, dict[str, Any]] = {"train": {}, "model": {}, "data": {}}
    train_fields = {f.name: TRAIN_TYPES[str(f.type)] for f in fields(TrainConfig)}
    for item in items:
        key, sep, raw = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise UserError(f"{flag} expects section.key=value (e.g. train.lr=0.01), got {item!r}")
        if section not in out:
            raise UserError(f"{flag} {key}: unknown section {section!r}; use train., model. or data.")
        value = parse_value(raw.strip())
        if section == "train":
            if name not in train_fields:
                import difflib

                close = difflib.get_close_matches(name, train_fields, n=1)
                hint = f" Did you mean train.{close[0]}?" if close else ""
                raise UserError(f"{flag} {key}: unknown training setting.{hint} Known: {', '.join(train_fields)}")
            value = _coerce(f"{flag} {key}", value, train_fields[name])
        out[section][name] = value
    return out


MAX_TRIALS = 1000


def parse_tune(items: list[str]) -> dict[str, list]:
    """`--tune train.lr=1e-3,3e-3 --tune model.width=8,16` -> {"train.lr": [0.001, 0.003], "model.width": [8, 16]}.

    Each value is checked as `--set` checks it (train.* here, model.* and data.* when the grid is built)."""
    space: dict[str, list] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        values = [v.strip() for v in raw.split(",")]
        if not sep or not key.strip() or not all(values):
            raise UserError(f"--tune expects section.key=v1,v2,... (e.g. train.lr=1e-3,1e-2), got {item!r}")
        key = key.strip()
        section, _, name = key.partition(".")
        # each value through --set's own checks: the section, and train.* names and types
        parsed = [parse_overrides([f"{key}={v}"], "--tune").get(section, {}).get(name) for v in values]
        if len(set(map(repr, parsed))) != len(parsed):
            raise UserError(f"--tune {key}: a value is listed twice in {raw!r}")
        if key in space:
            raise UserError(f"--tune {key}: given twice; list all its values in one --tune")
        space[key] = parsed
    if math.prod(len(v) for v in space.values()) > MAX_TRIALS:
        raise UserError(f"--tune: more than {MAX_TRIALS} trials per method and dataset; search fewer values")
    return space


def with_train(train: TrainConfig, **changes: Any) -> TrainConfig:
    new = replace(train, **changes)
    new.validate()
    return new
