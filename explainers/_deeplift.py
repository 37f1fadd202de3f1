"""DeepLIFT's rescale rule (Shrikumar et al., ICML 2017, https://arxiv.org/abs/1704.02685), the
engine of the ``deeplift`` and ``deeplift_shap`` plugins.

For a network f, inputs x and references x' (rows paired), the contributions are
C = (x - x') * m, where m is the gradient of f's target logit with every non-linearity's local
derivative replaced by its multiplier (the rescale rule, paper eq. 6-8):

* element-wise y = g(z) (ReLU, ELU, LeakyReLU, Sigmoid, Tanh, Softplus): m = (y - y') / (z - z'),
  the plain derivative g'(z) where |z - z'| < eps;
* max-pooling y = max over a window: the output difference is split between the input's and the
  reference's maximum, m_j = [sum over windows where j is x's argmax of g (max(y, y') - y') + sum
  over windows where j is x''s argmax of g (y - max(y, y'))] / (z_j - z'_j); the plain gradient
  where |z_j - z'_j| < eps. This is captum's max-pool rule.

The contributions add up to f(x) - f(x') to float precision. captum's do not in two cases, both
common in CNNs (tests/explainers/test_deeplift.py): overlapping pools (ResNet's 3x3 / stride 2),
where its ``max_unpool2d`` keeps one of the contributions of windows that share an argmax, and two
rule modules in a row (ReLU then max-pool, as in ResNet's and VGG's stems; ReLU then Tanh), where
its chained module hooks miss the inner rule; both only against a non-zero reference.

Because the multipliers are equal for both rows of a pair, only the input rows are
back-propagated: one no-grad forward of the references records z' and y' at each rule's module,
then one forward of the inputs sets each multiplier in the forward pass (an autograd function
whose backward multiplies by it) and one backward gives m at the input. ``groups`` references are
shared by every image (DeepSHAP's background): they are run once per call, not once per image.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from explainers import Explainer, setting
from explainers._modified_backprop import deeplift_reason, safe_copy

EPS = 1e-10
ELEMENTWISE = (nn.ReLU, nn.ELU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.Softplus)
RULES = (*ELEMENTWISE, nn.MaxPool2d)
# captum has rules for these, this engine has not: refused
REFUSED = (nn.MaxPool1d, nn.MaxPool3d, nn.Softmax, nn.Softmax2d)


class _Multiplied(torch.autograd.Function):
    """Forward: the module's output ``y``; backward: the incoming gradient times ``m``."""

    @staticmethod
    def forward(ctx, z: Tensor, y: Tensor, m: Tensor) -> Tensor:
        ctx.save_for_backward(m)
        return y.view_as(y)  # no copy: y is the module's fresh output, used nowhere else

    @staticmethod
    def backward(ctx, grad: Tensor):
        (m,) = ctx.saved_tensors
        return grad * m, None, None


class _MaxPoolRescaled(torch.autograd.Function):
    """Forward: the pooled ``y``; backward: the max-pool rescale rule (module docstring).
    ``small``: where |z - z'| < eps (None if nowhere), ``dz`` is 1 there."""

    @staticmethod
    def forward(ctx, z, y, index, index_ref, to_input, to_reference, dz, small):
        ctx.save_for_backward(index, index_ref, to_input, to_reference, dz, small)
        ctx.input_shape = z.shape
        return y.clone()

    @staticmethod
    def backward(ctx, grad: Tensor):
        index, index_ref, to_input, to_reference, dz, small = ctx.saved_tensors
        n, c = ctx.input_shape[:2]
        flat = (n, c, dz[0, 0].numel())
        out = grad.new_zeros(flat).scatter_add_(2, index, (grad * to_input).flatten(2))
        out = out.scatter_add_(2, index_ref, (grad * to_reference).flatten(2))
        rescaled = out.view(ctx.input_shape).div_(dz)
        if small is not None:
            plain = grad.new_zeros(flat).scatter_add_(2, index, grad.flatten(2))
            rescaled = torch.where(small, plain.view(ctx.input_shape), rescaled)
        return (rescaled, *([None] * 7))


def _paired(tensor: Tensor, reference: Tensor) -> tuple[Tensor, Tensor]:
    """``tensor`` [n*K, ...] viewed as [n, K, ...] beside ``reference`` [K, ...] as [1, K, ...]."""
    k = reference.shape[0]
    return tensor.view(-1, k, *tensor.shape[1:]), reference.unsqueeze(0)


def _expand(reference: Tensor, rows: int) -> Tensor:
    """``reference`` [K, ...] repeated for ``rows`` = n*K paired rows."""
    k = reference.shape[0]
    return (
        reference.unsqueeze(0)
        .expand(rows // k, *reference.shape)
        .reshape(rows, *reference.shape[1:])
    )


def _local_derivative(module: nn.Module, z: Tensor) -> Tensor:
    """g'(z) of an element-wise module (closed form for ReLU, else by autograd)."""
    if type(module) is nn.ReLU:
        return (z > 0).to(z.dtype)
    with torch.enable_grad():
        leaf = z.detach().requires_grad_(True)
        # forward(), not __call__: the module carries the rescale hook
        (derivative,) = torch.autograd.grad(module.forward(leaf).sum(), leaf)
    return derivative


@contextmanager
def _hooks(modules: list[nn.Module], hook) -> Iterator[None]:
    pools = [m for m in modules if isinstance(m, nn.MaxPool2d)]
    handles = [m.register_forward_hook(hook) for m in modules]
    for pool in pools:
        pool.return_indices = True  # on the plugin's own copy of the network
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        for pool in pools:
            pool.return_indices = False


def _record(net: nn.Module, forward, references: Tensor) -> dict[nn.Module, tuple[Tensor, ...]]:
    """Each rule module's input and output (and argmax) on the references: one no-grad forward."""
    recorded: dict[nn.Module, tuple[Tensor, ...]] = {}

    def record(module, args, output):
        if isinstance(module, nn.MaxPool2d):
            y, index = output
            recorded[module] = (args[0], y, index)
            return y
        recorded[module] = (args[0], output)

    with torch.no_grad(), _hooks([m for m in net.modules() if type(m) in RULES], record):
        forward(references)
    return recorded


def _rescale(module: nn.Module, z: Tensor, output, recorded) -> Tensor:
    """The module's output on the inputs, with the rescale rule as its backward."""
    if isinstance(module, nn.MaxPool2d):
        z_ref, y_ref, index_ref = recorded[module]
        y, index = output[0].detach(), output[1].flatten(2)
        zs, zr = _paired(z.detach(), z_ref)
        dz = (zs - zr).view_as(z)
        small = dz.abs() < EPS
        small = small if bool(small.any()) else None
        if small is not None:
            dz.masked_fill_(small, 1.0)
        ys, yr = _paired(y, y_ref)
        top = torch.maximum(ys, yr)
        to_input, to_reference = (top - yr).view_as(y), (ys - top).view_as(y)
        index_ref = _expand(index_ref.flatten(2), len(z))
        return _MaxPoolRescaled.apply(z, y, index, index_ref, to_input, to_reference, dz, small)
    z_ref, y_ref = recorded[module]
    zs, zr = _paired(z.detach(), z_ref)
    dz = zs - zr
    m = (_paired(output.detach(), y_ref)[0] - y_ref.unsqueeze(0)).div_(dz)
    small = dz.abs_() < EPS
    if bool(small.any()):
        m = torch.where(small, _local_derivative(module, zs), m)
    return _Multiplied.apply(z, output.detach(), m.view_as(z))


def contributions(
    net: nn.Module, forward, references: Tensor, images: Tensor, targets: Tensor, rows: int
) -> Tensor:
    """DeepLift contributions [B, C, H, W] of ``images`` for ``targets``, against each of the K
    ``references`` and averaged over them (DeepSHAP; K = 1: DeepLift). ``forward`` maps a batch
    to logits through ``net``, whose rule modules are each used once per forward (see
    ``deeplift_reason``); at most ``rows`` image-reference pairs go through it at once."""
    k = len(references)
    recorded = _record(net, forward, references)
    modules = [m for m in net.modules() if type(m) in RULES]
    hook = lambda module, args, output: _rescale(module, args[0], output, recorded)  # noqa: E731
    step = max(1, rows // k)
    parts = []
    with torch.enable_grad(), _hooks(modules, hook):
        for start in range(0, len(images), step):
            chunk = images[start : start + step]
            x = chunk.detach().repeat_interleave(k, dim=0).requires_grad_(True)
            chosen = targets[start : start + step].repeat_interleave(k)
            logits = forward(x).gather(1, chosen[:, None]).sum()
            (gradients,) = torch.autograd.grad(logits, x)
            deltas = x.detach() - _expand(references, len(x))
            parts.append((deltas * gradients).view(len(chunk), k, *chunk.shape[1:]).mean(1))
    return torch.cat(parts)


@dataclass
class RescaleRule(Explainer):
    """The plugins' shared body: a safe copy of the network per model, DeepLift's refusals, the
    contributions against ``_references`` summed over channels (signed)."""

    needs_copy: ClassVar[bool] = True  # runs on a copy of the network without in-place flags
    rows: int = setting(64)  # image-reference pairs per forward and backward

    def __post_init__(self) -> None:
        self._copy: tuple | None = None  # (original net, safe copy)
        self._verdicts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # net -> reason

    def supports(self, model) -> str | None:
        if model.net not in self._verdicts:
            self._verdicts[model.net] = deeplift_reason(model, RULES, REFUSED)
        return self._verdicts[model.net]

    def _references(self, images: Tensor) -> Tensor:
        raise NotImplementedError

    def explain(self, model, images, targets):
        reason = self.supports(model)
        if reason is not None:
            raise ValueError(reason)
        if self._copy is None or self._copy[0] is not model.net:
            self._copy = (model.net, safe_copy(model))
        clone = self._copy[1]
        references = self._references(images)
        attributions = contributions(clone.net, clone, references, images, targets, self.rows)
        for p in clone.net.parameters():
            p.grad = None
        return attributions.sum(dim=1).detach().float()
