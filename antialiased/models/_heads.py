"""Where a classifier's outputs are: the layer whose leading weight size is the number of classes."""
from __future__ import annotations

from torch import nn

__all__ = ["classifier_key", "num_outputs"]

_HEADS = (nn.Linear, nn.Conv2d, nn.Conv1d)


def _last_head(model: nn.Module) -> tuple[str, nn.Module] | None:
    linear = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if linear:
        return linear[-1]
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, _HEADS)]  # all-conv heads (SqueezeNet)
    return convs[-1] if convs else None


def classifier_key(model: nn.Module) -> str | None:
    """State-dict key of the classifier's weight: the last ``Linear`` (else the last conv); None if neither.

    Example:
        >>> classifier_key(nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8, 10)))
        '2.weight'
    """
    head = _last_head(model)
    return None if head is None else (f"{head[0]}.weight" if head[0] else "weight")


def num_outputs(model: nn.Module) -> int | None:
    """Outputs of the classifier (``out_features`` / ``out_channels`` of its last layer); None if unknown.

    Example:
        >>> num_outputs(nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8, 10)))
        10
    """
    head = _last_head(model)
    if head is None:
        return None
    module = head[1]
    return int(module.out_features if isinstance(module, nn.Linear) else module.out_channels)
