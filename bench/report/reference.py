"""The papers' published numbers: results/reference/*.csv, loaded and checked.

One row per (table, model, dataset, metric). `value` is required; `std`, `n` and `params`
may be empty. `tag` says where the number comes from (methods.md, Part 1, section 0) and
`verified` is "no" for rows the sources themselves flag (runs still running at export,
rows matched from extracted PDF text, secondary quotes): tables mark those with a dagger.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from bench.base import UserError

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "results" / "reference"
COLUMNS = ("table", "model", "dataset", "metric", "value", "std", "n", "params", "source", "tag", "verified", "note")
# CSV: a results file in the authors' repository; IMG: a table shipped as an image in the authors' repository
TAGS = ("XLSX", "README", "PwC", "3rd", "CALC", "issue", "poster", "CSV", "IMG")
Key = tuple[str, str, str, str]  # (table, model, dataset, metric)


@dataclass(frozen=True)
class Reference:
    table: str
    model: str
    dataset: str
    metric: str
    value: float
    std: float | None
    n: int | None
    params: int | None
    source: str
    tag: str
    verified: bool
    note: str
    where: str  # "file:line", for messages
    text: str  # the published cell as printed: "92.2 ± 0.1 (3)", digits as in the file

    @property
    def key(self) -> Key:
        return (self.table, self.model, self.dataset, self.metric)


def _number(text: str, column: str, where: str, *, required: bool, integer: bool = False) -> float | int | None:
    text = text.strip()
    if not text:
        if required:
            raise UserError(f"{where}: column {column!r} is empty; it needs a number")
        return None
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{where}: column {column!r} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise UserError(f"{where}: column {column!r} must be a finite number, got {text!r}")
    if integer:
        if value != int(value):
            raise UserError(f"{where}: column {column!r} must be a whole number, got {text!r}")
        return int(value)
    return value


def _row(values: dict[str, str], where: str) -> Reference:
    for column in ("table", "model", "dataset", "metric", "source"):
        if not values[column].strip():
            raise UserError(f"{where}: column {column!r} is empty")
    tag = values["tag"].strip()
    if tag not in TAGS:
        raise UserError(f"{where}: tag must be one of {', '.join(TAGS)}, got {tag!r}")
    verified = values["verified"].strip().lower()
    if verified not in ("yes", "no"):
        raise UserError(f"{where}: verified must be yes or no, got {values['verified']!r}")
    return Reference(
        table=values["table"].strip(),
        model=values["model"].strip(),
        dataset=values["dataset"].strip(),
        metric=values["metric"].strip(),
        value=_number(values["value"], "value", where, required=True),
        std=_number(values["std"], "std", where, required=False),
        n=_number(values["n"], "n", where, required=False, integer=True),
        params=_number(values["params"], "params", where, required=False, integer=True),
        source=values["source"].strip(),
        tag=tag,
        verified=verified == "yes",
        note=values["note"].strip(),
        where=where,
        text=values["value"].strip()
        + (f" ± {values['std'].strip()}" if values["std"].strip() else "")
        + (f" ({values['n'].strip()})" if values["n"].strip() else ""),
    )


def read_csv(path: Path) -> list[Reference]:
    """The rows of one reference file; any problem is a UserError naming the file and line."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise UserError(f"{path}:1: empty reference file; the header must be {','.join(COLUMNS)}")
        header = [h.strip() for h in header]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise UserError(f"{path}:1: missing column(s) {', '.join(missing)}; the header must be {','.join(COLUMNS)}")
        rows, start = [], reader.line_num
        for fields in reader:
            where = f"{path}:{start + 1}"
            start = reader.line_num
            if not any(x.strip() for x in fields):
                continue
            if len(fields) != len(header):
                raise UserError(f"{where}: {len(fields)} fields, the header has {len(header)}")
            rows.append(_row(dict(zip(header, fields)), where))
    return rows


def load_reference(folder: str | Path | None = None) -> dict[Key, Reference]:
    """Every row of every *.csv in `folder` (default results/reference/), keyed by (table, model, dataset, metric)."""
    folder = Path(folder) if folder is not None else REFERENCE_DIR
    refs: dict[Key, Reference] = {}
    for path in sorted(folder.glob("*.csv")):
        for ref in read_csv(path):
            if ref.key in refs:
                raise UserError(f"{ref.where}: duplicate of {refs[ref.key].where} (same table, model, dataset, metric)")
            refs[ref.key] = ref
    return refs
