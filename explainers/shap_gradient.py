"""SHAP GradientExplainer: expected gradients (Erion et al., Nature Machine Intelligence 2021, https://arxiv.org/abs/1906.10670; Lundberg & Lee, NeurIPS 2017)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from explainers import Explainer, image_seeds, register_explainer
from explainers._perturbation import numpy_seed


class _TargetLogit(nn.Module):
    """The wrapped network's logit for one class, [N,1]: shap then explains one output only."""

    def __init__(self, model) -> None:
        super().__init__()
        self.net = model.net  # registered, so shap sees the parameters
        self.model = model  # the Classifier (not a module): runs net in the model's input layout
        self.target = 0

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)[:, self.target : self.target + 1]


@register_explainer("shap_gradient", tags=("gradient", "shap", "sampling"), requires=("shap",))
@dataclass
class ShapGradient(Explainer):
    """SHAP's expected gradients on the model input, signed, summed over channels.

    ``shap.GradientExplainer`` estimates phi_i = E_{x'~background, t~U(0,1)}[(x_i - x'_i) *
    d logit_target / dx_i at x' + t (x - x')]: positive = the pixel raises the target's logit above
    its expected value over the background, negative = lowers it; the map keeps the sign.
    Background: a seeded sample of ``background_size`` of the images given to :meth:`prepare`;
    without it, one all-zero input (the data mean in normalised space), which makes this integrated
    gradients from that baseline at random points. Budget: ``nsamples`` forward + backward passes
    per image (default 200, in batches of ``batch_size``), plus one forward pass of the background
    per model. Seeded per image by ``seed`` and the image's content.
    """

    version = "1"
    fast_params = {"nsamples": 4, "background_size": 4}

    nsamples: int = 200
    background_size: int = 50
    batch_size: int = 50
    local_smoothing: float = 0.0  # std of Gaussian noise added to the input (shap's option)
    seed: int = 0

    def cost(self) -> int:
        return 2 * self.nsamples  # a forward and a backward per sample (background: once per model)

    def __post_init__(self) -> None:
        self._background: Tensor | None = None
        self._cached: tuple | None = None  # (net, background, device, shap explainer, wrapper)

    def prepare(self, model, background: Tensor) -> None:
        g = torch.Generator().manual_seed(self.seed)
        keep = torch.randperm(len(background), generator=g)[: self.background_size].sort().values
        self._background = background[keep].detach().clone()
        self._cached = None

    def _shap_explainer(self, model, images: Tensor):
        import shap

        device = images.device
        cached = self._cached
        if (
            cached
            and cached[0] is model.net
            and cached[1] is self._background
            and cached[2] == device
        ):
            return cached[3], cached[4]
        background = self._background
        if background is None:
            background = torch.zeros(1, *images.shape[1:])
        wrapper = _TargetLogit(model)
        # Construction runs the model once on the whole background (len(background) evaluations).
        explainer = shap.GradientExplainer(
            wrapper,
            background.to(device, images.dtype),
            batch_size=self.batch_size,
            local_smoothing=self.local_smoothing,
        )
        self._cached = (model.net, self._background, device, explainer, wrapper)
        return explainer, wrapper

    def explain(self, model, images, targets):
        explainer, wrapper = self._shap_explainer(model, images)
        numpy_state = np.random.get_state()  # shap reseeds numpy's global generator: restore it
        maps = []
        try:
            for image, target, seed in zip(
                images.detach(), targets.tolist(), image_seeds(images, self.seed), strict=True
            ):
                wrapper.target = int(target)
                with torch.random.fork_rng(devices=[]), torch.enable_grad():
                    torch.manual_seed(seed)  # local_smoothing draws from torch's generator
                    phi = explainer.shap_values(
                        image[None], nsamples=self.nsamples, rseed=numpy_seed(seed)
                    )
                maps.append(np.asarray(phi).reshape(images.shape[1:]).sum(0))
        finally:
            np.random.set_state(numpy_state)
        return torch.from_numpy(np.stack(maps).astype(np.float32)).to(images.device)
