"""The one place that loads matplotlib (an optional dependency) and writes figures to files."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["pyplot", "save_figure"]


def pyplot():
    """``matplotlib.pyplot`` on the file-only Agg backend, or an ImportError saying how to install it."""
    try:
        import matplotlib
    except ImportError:  # an optional dependency: say how to get it
        raise ImportError("plots need matplotlib: pip install 'antialiased[plots]' (or pass --no-plots)") from None
    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Lay out ``fig``, write it to ``path`` (creating folders) and free it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
