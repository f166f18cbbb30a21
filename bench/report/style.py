"""The report's one plot style: the Agg backend, one look per method, a legend right of the panels, saving.

Every method has one colour and marker in every plot of a report (`method_styles`): filled markers and
solid lines for methods that learn their kernel size, hollow markers and dashed lines for fixed-size
baselines and whole-model references. Points are named by a legend, never by labels on the points.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import matplotlib

import methods

matplotlib.use("Agg")  # files only, never a window; before pyplot is first imported
import matplotlib.pyplot as pyplot  # noqa: E402

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


def tight(fig) -> None:
    with warnings.catch_warnings():  # a crowded figure keeps matplotlib's layout: no need to say so
        warnings.simplefilter("ignore", UserWarning)
        fig.tight_layout()


def save(fig, path: Path) -> Path:
    if not fig.legends:  # a figure legend was placed after its own tight_layout (legend)
        tight(fig)
    fig.savefig(path, dpi=110, bbox_inches="tight")  # "tight": a legend right of the panels stays in
    pyplot.close(fig)
    return path


def legend(fig, handles: dict) -> None:
    """One legend for the figure, right of the panels (laid out first: tight_layout cannot make room for it)."""
    tight(fig)
    fig.legend(list(handles.values()), list(handles), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7,
               frameon=False)  # fmt: skip


def method_styles(names, method_of: dict[str, str] | None = None) -> dict[str, dict]:
    """{name: matplotlib style} for the methods (or rows, with `method_of` naming each row's method) of one
    report: a colour and marker each (distinct for up to 20, distinct pairs beyond), filled markers and solid
    lines when the method learns its size."""
    palette = matplotlib.colormaps["tab20"].colors
    out = {}
    for i, name in enumerate(sorted(set(names))):
        learned = learns_size((method_of or {}).get(name, name)) is not False
        colour = palette[(i * 7) % len(palette)]  # a stride through the palette keeps neighbours apart
        marker = MARKERS[(i + i // len(palette)) % len(MARKERS)]
        out[name] = {"color": colour, "marker": marker, "mfc": colour if learned else "white",
                     "ls": "-" if learned else "--"}  # fmt: skip
    return out


def learns_size(method: str) -> bool | None:
    """The method card's learned_size; None for a plugin method this report was not given."""
    try:
        return methods.card_of(method).learned_size
    except Exception:
        return None


def point_style(style: dict) -> dict:
    return {"color": style["color"], "marker": style["marker"], "mfc": style["mfc"], "ms": 5, "ls": "none"}


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")
