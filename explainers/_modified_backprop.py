"""What the methods that override a network's backward pass share (captum's hook-based plugins,
the project's DeepLift): a safe copy of the network, DeepLift's refusals, a seeded background."""

from __future__ import annotations

import copy
import re

import torch
from torch import Tensor, nn


def safe_copy(model):
    """A deep copy of ``model`` (a Classifier) with every in-place flag off."""
    clone = copy.copy(model)
    clone.net = copy.deepcopy(model.net)
    for module in clone.net.modules():
        if getattr(module, "inplace", False) is True:
            module.inplace = False
    clone.net.eval()
    return clone


# Module types DeepLift has no rule for (it would back-propagate their plain gradient).
NO_DEEPLIFT_RULE = (
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.PReLU,
    nn.SELU,
    nn.CELU,
    nn.GLU,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.MultiheadAttention,
    nn.AdaptiveMaxPool2d,
)
_NO_DEEPLIFT_NAME = re.compile(r"gelu|silu|swish|mish|hard|layernorm|attention", re.IGNORECASE)


def deeplift_reason(model, rules: tuple[type, ...], refused: tuple[type, ...] = ()) -> str | None:
    """Why DeepLift with rules for the module types ``rules`` cannot apply to ``model``: a
    non-linearity without a rule (``NO_DEEPLIFT_RULE``, ``refused``), or a module with a rule used
    twice in one forward (its reference activations would be overwritten); None if it applies."""
    for name, module in model.net.named_modules():
        if (
            isinstance(module, NO_DEEPLIFT_RULE + refused)
            or _NO_DEEPLIFT_NAME.search(type(module).__name__)
        ) and type(module) not in rules:
            return (
                f"DeepLift has no rule for {type(module).__name__} (layer {name!r} of model "
                f"{model.name!r}) and would back-propagate its plain gradient"
            )
    if model.input_size is None:
        return None
    calls: dict[str, int] = {}
    handles = [
        m.register_forward_hook(lambda mod, i, o, n=n: calls.__setitem__(n, calls.get(n, 0) + 1))
        for n, m in model.net.named_modules()
        if type(m) in rules
    ]
    dtype = next(model.net.parameters(), torch.zeros(())).dtype
    try:
        with torch.no_grad():
            model(torch.zeros(1, *model.input_size, device=model.device, dtype=dtype))
    finally:
        for h in handles:
            h.remove()
    reused = sorted(n for n, count in calls.items() if count > 1)
    if reused:
        return (
            f"DeepLift needs each non-linear module used once per forward; model {model.name!r} "
            f"reuses {', '.join(reused[:3])}"
        )
    return None


def sample(background: Tensor, size: int, seed: int) -> Tensor:
    """``size`` images of ``background`` drawn without replacement by ``seed``, in dataset order."""
    g = torch.Generator().manual_seed(seed)
    keep = torch.randperm(len(background), generator=g)[:size].sort().values
    return background[keep].detach().clone()


class FromBackground:
    """Baselines drawn from the background images given to ``prepare``: ``background_size`` of
    them, chosen by ``seed`` (fields of the plugin); without a background, zero images."""

    def prepare(self, model, background: Tensor) -> None:
        self._background = sample(background, self.background_size, self.seed)

    def _baselines(self, images: Tensor, zeros: int) -> Tensor:
        background = getattr(self, "_background", None)
        if background is None:
            background = torch.zeros(zeros, *images.shape[1:])
        return background.to(images.device, images.dtype)
