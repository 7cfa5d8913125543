"""What the figure commands share (``exca-hydra plot``, ``timeline``): matplotlib, an optional
extra imported only by them, and writing a figure to PNG or SVG, or showing it in a window."""

from __future__ import annotations

import typing as tp
from pathlib import Path

INSTALL = "pip install 'exca-hydra[plot]'"
SUFFIXES = (".png", ".svg", ".pdf")


class MissingMatplotlib(ImportError):
    pass


def pyplot(show: bool) -> tp.Any:
    """matplotlib's pyplot; without a window unless one is asked for (a cluster node has no display)."""
    try:
        import matplotlib
    except ImportError as e:
        raise MissingMatplotlib(f"Figures need matplotlib, an optional extra: {INSTALL}") from e
    if not show:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def check_output(output: str | Path | None, show: bool) -> None:
    """Before any reading: an output the figure cannot be written as is refused at once."""
    if output is None and not show:
        raise ValueError("Say where the figure goes: -o FILE.png (or .svg, .pdf), or --show for a window")
    if output is not None and Path(output).suffix.lower() not in SUFFIXES:
        raise ValueError(f"{output}: the figure's file name says its format, one of {', '.join(SUFFIXES)}")


def finish(fig: tp.Any, output: str | Path | None, show: bool) -> None:
    plt = pyplot(show)
    if output is not None:
        fig.savefig(output, dpi=120, bbox_inches="tight")
    if show:
        plt.show()
    plt.close(fig)


def short_path(path: str | Path, keep: int = 3) -> str:
    """The end of a long cache path, for a title."""
    parts = Path(path).absolute().parts
    return str(Path(*parts[-keep:])) if len(parts) > keep else str(path)
