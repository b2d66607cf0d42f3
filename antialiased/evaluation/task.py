"""What the evaluation loop knows about a kind of model: the task adapter's interface (classification in
:mod:`antialiased.evaluation.classification`, segmentation in :mod:`antialiased.evaluation.segmentation`;
:mod:`antialiased.evaluation.tasks` registers them, once each).

A task owns its targets (a class per image, or a label per pixel), which samples of a loader batch
were skipped, how a model's output becomes class scores (a tuple's first item; a dict's ``"out"``),
"the same prediction" (top-1 vs per-pixel argmax), the check that a model is of this kind (before
any image is read), and its data (how the dataset is opened and the model checked against it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from antialiased.data.folder import SKIPPED_TARGET
from antialiased.errors import ModelError
from antialiased.evaluation.probe import probe_output


__all__ = ["Task", "TaskData", "describe_output"]


@dataclass
class TaskData:
    """The data of one evaluation as a task opened it: the dataset (files listed, nothing decoded yet),
    where it is, its class names (None: from the model), and the settings that go into result files."""

    dataset: Any
    where: Path
    classes: list[str] | None
    settings: dict[str, Any] = field(default_factory=dict)
    loader_batch: int | None = None  # images per loader batch; None: the run's --batch-size


def describe_output(output: Any) -> str:
    """A short description of a model's output for error messages.

    Example:
        >>> describe_output({"out": torch.zeros(1, 21, 8, 8)})
        "a dict with keys ['out'], 'out' a tensor of shape (1, 21, 8, 8)"
    """
    if torch.is_tensor(output):
        return f"a tensor of shape {tuple(output.shape)}"
    if isinstance(output, dict):
        first = next(iter(output), None)
        inner = f", {first!r} {describe_output(output[first])}" if first is not None else ""
        return f"a dict with keys {list(output)}{inner}"
    if isinstance(output, (tuple, list)):
        return f"a {type(output).__name__} of {len(output)} items, the first {describe_output(output[0]) if output else 'none'}"
    return f"a {type(output).__name__}"


class Task:
    """A kind of model and its evaluation. Subclasses set ``name`` and override what differs.

    The defaults are classification's: one target per sample, skipped samples marked with
    :data:`~antialiased.data.SKIPPED_TARGET`, class scores of shape (N, classes).
    """

    name: str = "task"
    #: what a prediction is, for messages: "top-1 class", "per-pixel class"
    prediction: str = "prediction"
    #: the dimension count of this task's class scores: 2 (N, classes) or 4 (N, classes, H, W)
    score_dims: int = 2
    #: the two columns of the paper-style tables of ``antialiased report`` (accuracy, consistency):
    #: (result-file metric, column label) each
    table_columns: tuple[tuple[str, str], tuple[str, str]] = (("acc1", "Accuracy"), ("consistency", "Consistency"))

    def kept(self, targets: torch.Tensor) -> torch.Tensor:
        """(N,) bool: the samples of a batch that were read (a skipped one carries SKIPPED_TARGET)."""
        return targets != SKIPPED_TARGET

    def outputs(self, output: Any) -> torch.Tensor:
        """The class scores of a model's output: a tuple's first item (auxiliary heads), a dict's ``"out"``."""
        if isinstance(output, dict):
            if "out" not in output:
                raise ModelError(f"the model returns a dict without an 'out' entry ({describe_output(output)}): "
                                 f"evaluation reads the class scores from output['out'], as torchvision's "
                                 f"segmentation models return them")
            output = output["out"]
        if isinstance(output, (tuple, list)):
            output = output[0]
        return output

    def predict(self, scores: torch.Tensor) -> torch.Tensor:
        """The predicted class of each sample (or pixel): the argmax over the class dimension."""
        return scores.argmax(dim=1)

    def same(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Whether two predictions are the same, element by element (per image, or per pixel)."""
        return a == b

    def max_label(self, targets: torch.Tensor) -> int:
        """The largest class index among ``targets`` (-1 for none), checked against the model's outputs."""
        return int(targets.max()) if targets.numel() else -1

    def check_output(self, output: Any, size: int) -> int:
        """The number of classes of a probe output for a (1, 3, size, size) image; ModelError if not this task's."""
        raise NotImplementedError

    def probe(self, model: nn.Module, size: int, device: torch.device | str) -> int:
        """The model's number of classes, from one zero image of ``size`` pixels (no data is read)."""
        return self.check_output(probe_output(model, size, device), size)

    # --- the data of an evaluation run (see antialiased.evaluation.runner) ---------------------------------

    def open_data(self, config: Any, scorers: Sequence[Any]) -> TaskData:
        """List the files of ``config``'s data for ``scorers`` (no image decoded); raise the package's errors."""
        raise NotImplementedError

    def fit_model(self, model: nn.Module, data: TaskData, config: Any, device: torch.device) -> None:
        """Check that ``model`` fits ``data`` (kind, classes), before any image is read."""
        raise NotImplementedError

    def settings(self, config: Any, data: TaskData) -> dict[str, Any]:
        """What result files record about how the data were read (sizes, batch, decode)."""
        return dict(data.settings)
