"""Translation Invariant Polyphase Sampling (TIPS, Saha & Gokhale): a learned per-channel mix of components.

"Improving Shift Invariance in Convolutional Neural Networks with Translation Invariant Polyphase
Sampling" (Saha & Gokhale, WACV 2025; code: github.com/sourajitcs/tips, ``tips.py``, MIT). The
layer implemented here is the released ``TIPS`` module's forward, for stride ``s`` (the release
has ``s = 2`` only; the same rule for other strides)::

    x      = pad(x)                                  # odd sides: one row on top / column on the left
    psi    = relu(dwconv_{k x k}(x))                 # depthwise, zero padding (k-1)/2, no bias
    tau    = softmax(dwconv_{1x1}(adaptive_avg_pool_{s x s}(psi)))   # (N, C, s*s), per channel
    out    = sum_{i, j < s} tau[:, :, j s + i] * x[:, :, i::s, j::s]

The pooled cell ``q`` (row-major over the ``s x s`` cells of ``psi``) weighs the component at
offset ``(i, j)`` with ``q = j s + i``: the release lists its components as ``(0,0), (1,0),
(0,1), (1,1)`` and pairs them with the pooled cells in that order. Padding is ``pad_type``
(reflect, as the release's default); the pad amount for other strides is what makes the side a
multiple of ``s``. :meth:`TranslationInvariantPolyphaseSampling.reset_parameters` initializes as
the release's ResNet: Kaiming-normal, fan-out, ReLU gain, for both convs.

**The training objective is not part of the layer.** The paper trains with two regularizers on
the layer's intermediates: ``L_FM`` on the mixing weights and ``L_undo`` between ``psi`` and a
shifted copy of the layer's input, weighted against the classification loss (``alpha = 0.35`` and
a start epoch ``t_epsilon`` in the release's ``train_test.py``). ``forward(x, return_aux=True)``
returns those intermediates and :func:`tips_fm_loss` / :func:`tips_undo_loss` compute the two
terms as the release's code does (``mean(1 - ||tau||_2)`` and the mean squared error against the
input circularly shifted); a training loop must add them for the paper's recipe. Without them the
layer is trained by the task loss alone. (In the release, ``TIPS.forward`` returns three values
where its ResNet and training script unpack four when the mixing weights are requested, so the
regularized configuration does not run as published; the losses here follow what the script
evidently intends.)

Example:
    >>> tips = TranslationInvariantPolyphaseSampling(4)
    >>> tips.extra_repr()
    "4, stride=2, kernel_size=3, pad_type='reflect'"
    >>> out, aux = tips(torch.randn(2, 4, 7, 8), return_aux=True)
    >>> out.shape, aux.psi.shape, aux.tau.shape
    (torch.Size([2, 4, 4, 4]), torch.Size([2, 4, 8, 8]), torch.Size([2, 4, 4]))
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from antialiased.errors import ConfigError
from antialiased.layers._method_args import check_input, check_int
from antialiased.layers._padding import effective_mode, pad, pad_mode

__all__ = ["TIPSAux", "tips_fm_loss", "tips_undo_loss", "TranslationInvariantPolyphaseSampling"]


class TIPSAux(NamedTuple):
    """The intermediates the paper's regularizers read: ``psi`` (N, C, H', W'), ``tau`` (N, C, s*s),
    and ``input``, the layer's padded input (N, C, H', W')."""

    psi: torch.Tensor
    tau: torch.Tensor
    input: torch.Tensor


def tips_fm_loss(tau: torch.Tensor) -> torch.Tensor:
    """``mean(1 - ||tau||_2)`` over samples and channels (the release's ``Index_Regularize``).

    Example:
        >>> tips_fm_loss(torch.tensor([[[1.0, 0.0, 0.0, 0.0]]]))  # one-hot: norm 1
        tensor(0.)
    """
    return (1 - torch.linalg.vector_norm(tau, ord=2, dim=-1)).mean()


def tips_undo_loss(aux: TIPSAux, shift: tuple[int, int]) -> torch.Tensor:
    """Mean squared error between ``psi`` and the layer's input circularly shifted by ``shift``.

    The release draws ``shift`` uniformly from ``[-m, m]`` per axis for each batch (``m`` a quarter
    of the image side), the same for every layer; the caller draws it.

    Example:
        >>> x = torch.randn(1, 1, 4, 4)
        >>> float(tips_undo_loss(TIPSAux(torch.roll(x, (1, 2), (2, 3)), torch.ones(1, 1, 4), x), (1, 2)))
        0.0
    """
    return F.mse_loss(aux.psi, torch.roll(aux.input, shifts=tuple(shift), dims=(-2, -1)))


class TranslationInvariantPolyphaseSampling(nn.Module):
    """TIPS (Saha & Gokhale, WACV 2025): a per-channel softmax mix of the polyphase components.

    Args:
        channels: input channels.
        stride: subsampling factor (the release: 2).
        kernel_size: the depthwise conv's size (odd; the release's ``soft_kernel`` 3).
        pad_type: padding of odd sides: 'reflect' (the release's), 'replicate', 'zero' or 'circular'.

    Parameters: ``conv1.weight`` (C, 1, k, k), ``conv2.weight`` (C, 1, 1, 1).

    Shape:
        - Input: :math:`(N, C, H, W)`
        - Output: :math:`(N, C, \\lceil H / s \\rceil, \\lceil W / s \\rceil)`; with
          ``return_aux=True`` also a :class:`TIPSAux`

    Example:
        >>> tips = TranslationInvariantPolyphaseSampling(3)
        >>> with torch.no_grad():
        ...     _ = tips.conv2.weight.zero_()  # equal logits: the average of the 4 components
        >>> x = torch.randn(1, 3, 4, 4)
        >>> torch.allclose(tips(x), F.avg_pool2d(x, 2), atol=1e-6)
        True
    """

    def __init__(self, channels: int, stride: int = 2, *, kernel_size: int = 3, pad_type: str = "reflect") -> None:
        super().__init__()
        check_int("channels", channels, 1, "pass the number of channels of the layer's input")
        check_int("stride", stride, 2, "TIPS mixes the components of a stride >= 2 (the paper's is 2)")
        check_int("kernel_size", kernel_size, 1, "the paper uses 3")
        if kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size must be odd (a centred depthwise conv), got {kernel_size}; the paper uses 3")
        self.channels, self.stride, self.kernel_size, self.pad_type = channels, stride, kernel_size, pad_type
        self._mode = pad_mode(pad_type)
        self.conv1 = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels, bias=False)
        self.conv2 = nn.Conv2d(channels, channels, 1, groups=channels, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The release's initialization: Kaiming-normal (fan-out, ReLU gain) for both depthwise convs."""
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stride
        top, left = (-x.shape[2]) % s, (-x.shape[3]) % s
        if not (top or left):
            return x
        pads = (left, 0, top, 0)
        return pad(x, pads, effective_mode(self._mode, pads, tuple(x.shape[2:])))

    def forward(self, x: torch.Tensor, return_aux: bool = False) -> torch.Tensor | tuple[torch.Tensor, TIPSAux]:
        x = self._pad(check_input(x, "TIPS", self.channels))
        s = self.stride
        psi = F.relu(self.conv1(x))
        tau = self.conv2(F.adaptive_avg_pool2d(psi, (s, s))).flatten(2).softmax(dim=-1)
        weights = tau.to(x.dtype)
        out = None
        for q in range(s * s):
            j, i = divmod(q, s)  # cell q weighs the component at offset (i, j), q = j s + i
            term = weights[:, :, q, None, None] * x[:, :, i::s, j::s]
            out = term if out is None else out + term
        return (out, TIPSAux(psi, tau, x)) if return_aux else out

    def extra_repr(self) -> str:
        return f"{self.channels}, stride={self.stride}, kernel_size={self.kernel_size}, pad_type={self.pad_type!r}"
