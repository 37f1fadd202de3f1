"""Shared machinery of the explainer-aware metrics (Adebayo et al., "Sanity Checks for Saliency
Maps", NeurIPS 2018, arXiv 1810.03292, and their successors): the layer cascade of a model, seeded
re-initialisation on a deep copy, re-explaining through the explainer, and map similarities.

* :func:`layer_groups`: the model's parameterised modules in forward order, each normalisation
  layer joined to the layer it follows;
* :func:`randomised_copy` / :func:`randomise`: a deep copy of the model and the seeded
  re-initialisation of a group of its layers (the shared model is never touched, the global RNGs
  are restored);
* :func:`explain`: the explainer's maps on private copies of the inputs, at image resolution;
* :func:`spearman`, :func:`ssim`: per-image similarities of two batches of maps, with ties and
  constant maps defined;
* :class:`Cascade`: MPRT and sMPRT, which differ in the order and in how maps are made.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from typing import ClassVar

import torch
from scipy.stats import rankdata
from torch import Tensor, nn

from benchmark.maps import resize_maps
from metrics import Directions, Metric

# Normalisation layers: their affine parameters go with the layer they follow (see randomise).
NORMALISATION = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
ROOT = "root"  # the name of the network itself where it holds parameters of its own


def randomised_copy(model):
    """A deep copy of the Classifier ``model`` (its network copied, in eval mode), to randomise."""
    clone = copy.copy(model)
    clone.net = copy.deepcopy(model.net)
    clone.net.eval()
    return clone


def _own_parameters(module: nn.Module) -> bool:
    return next(module.parameters(recurse=False), None) is not None


def layer_groups(model, images: Tensor) -> list[tuple[str, list[str]]]:
    """[(group name, module names)] in forward order: every module holding parameters of its own,
    ordered by its first call in a probe forward of one image (forward pre-hooks), a
    normalisation layer joined to the group of the parameterised layer called before it. Modules
    the forward never calls are left out (they cannot change a map)."""
    called: list[str] = []
    modules = {name: m for name, m in model.net.named_modules() if _own_parameters(m)}

    def hook(name):
        def record(_module, _inputs):
            if name not in called:
                called.append(name)

        return record

    handles = [m.register_forward_pre_hook(hook(name)) for name, m in modules.items()]
    try:
        with torch.no_grad():
            model(images[:1].clone())
    finally:
        for handle in handles:
            handle.remove()
    groups: list[tuple[str, list[str]]] = []
    for name in called:
        if isinstance(modules[name], NORMALISATION) and groups:
            groups[-1][1].append(name)
        else:
            groups.append((name or ROOT, [name]))
    if not groups:
        raise ValueError(f"model {model.name!r} has no parameterised layer to randomise")
    return groups


def layer_count(model) -> int:
    """The number of cascade steps without a probe forward: modules holding parameters of their
    own that are not normalisation layers (an upper bound where the forward skips some)."""
    modules = [m for m in model.net.modules() if _own_parameters(m)]
    return max(1, sum(not isinstance(m, NORMALISATION) for m in modules))


def layer_seed(seed: int, name: str) -> int:
    """The torch seed of layer ``name``'s re-initialisation: a keyed hash, so each layer draws
    the same weights whatever the cascade's order or the other layers."""
    digest = hashlib.blake2b(name.encode(), digest_size=8, key=str(seed).encode()).digest()
    return int.from_bytes(digest, "little") >> 1


@torch.no_grad()
def randomise(net: nn.Module, names: list[str], seed: int) -> None:
    """Re-initialise the modules ``names`` of ``net`` in place (``net`` must be a copy).

    A layer with ``reset_parameters`` (convolutions, linear layers, embeddings) runs it under a
    forked torch RNG seeded by :func:`layer_seed` (its own init distribution, e.g. Kaiming-uniform
    for ``nn.Conv2d``); one without redraws each of its own parameters from a normal distribution
    with that parameter's mean and standard deviation. A normalisation layer's affine weight and
    bias are reset to torch's init (1 and 0); its running statistics are kept.
    """
    for name in names:
        module = net.get_submodule(name)
        if isinstance(module, NORMALISATION):
            for parameter, value in ((module.weight, 1.0), (module.bias, 0.0)):
                if parameter is not None:
                    parameter.fill_(value)
            continue
        cuda = sorted({p.device.index or 0 for p in module.parameters() if p.device.type == "cuda"})
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(layer_seed(seed, name))
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
            else:
                for p in module.parameters(recurse=False):
                    p.normal_(p.mean().item(), p.std(unbiased=False).item())


def explain(explainer, model, images: Tensor, targets: Tensor) -> Tensor:
    """``explainer``'s maps [B,H,W] (float64, CPU) at the images' size, on private copies."""
    maps = explainer.explain(model, images.clone(), targets.clone())
    if not isinstance(maps, Tensor) or maps.dim() != 3 or len(maps) != len(images):
        raise ValueError(f"{explainer.name} returned no [B,H,W] maps for {len(images)} images")
    maps = resize_maps(maps.detach(), tuple(images.shape[-2:])).double().cpu()
    if not torch.isfinite(maps).all():
        raise ValueError(f"{explainer.name} returned a map with NaN or infinite values")
    return maps


def constant(flat: Tensor) -> Tensor:
    """[B] True where a flattened map [B,n] is constant up to float noise (spread <= 1e-6 of its
    magnitude: a bilinearly resized constant map is not exactly constant)."""
    return flat.amax(1) - flat.amin(1) <= 1e-6 * flat.abs().amax(1)


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Per-image Spearman rank correlation [B] of maps [B,H,W]: Pearson correlation of the
    average ranks (ties share their mean rank). Two constant maps score 1 (the same map up to
    scale), one constant and one not 0 (no rank relation)."""
    a, b = a.flatten(1).double().cpu(), b.flatten(1).double().cpu()
    flat_a, flat_b = constant(a), constant(b)
    ranks = []
    for x, flat in ((a, flat_a), (b, flat_b)):
        r = torch.from_numpy(rankdata(x.numpy(), axis=1))
        r = torch.where(flat[:, None], 0.0, r - r.mean(1, keepdim=True))
        ranks.append(r)
    ra, rb = ranks
    norm = ra.norm(dim=1) * rb.norm(dim=1)
    r = (ra * rb).sum(1) / torch.where(norm > 0, norm, 1.0)
    r = torch.where(flat_a | flat_b, 0.0, r)
    return torch.where(flat_a & flat_b, 1.0, r)


def _unit_range(flat: Tensor) -> Tensor:
    low, high = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    spread = torch.where(constant(flat)[:, None], torch.inf, high - low)
    return (flat - low) / spread  # a constant map becomes all zeros


def ssim(a: Tensor, b: Tensor) -> Tensor:
    """Per-image SSIM [B] (skimage's ``structural_similarity``, 7x7 uniform window or the largest
    odd one that fits, data range 1) of maps [B,H,W], each min-max scaled to [0, 1] first (a
    constant map to all zeros)."""
    from skimage.metrics import structural_similarity

    shape = a.shape[1:]
    a = _unit_range(a.flatten(1).double().cpu()).view(-1, *shape).numpy()
    b = _unit_range(b.flatten(1).double().cpu()).view(-1, *shape).numpy()
    window = min(7, min(shape) - (1 - min(shape) % 2))
    return torch.tensor(
        [
            structural_similarity(x, y, win_size=window, data_range=1.0)
            for x, y in zip(a, b, strict=True)
        ],
        dtype=torch.float64,
    )


@dataclass
class Cascade(Metric):
    """Base of MPRT and sMPRT: compare the maps under the model with the maps under cascading
    randomisations of its layers, in ``order``; subclasses say how maps are made."""

    needs_explainer: ClassVar[bool] = True
    higher_is_better: ClassVar[Directions] = Directions(
        {"spearman": False, "ssim": False, "spearman@*": False, "ssim@*": False}
    )
    headline: ClassVar[tuple[str, ...]] = ("spearman",)
    order: ClassVar[str] = "top_down"  # or "bottom_up"

    seed: int = 0  # the layers' re-initialisation (and any noise)

    @classmethod
    def passes(cls, mean: float) -> bool:
        """The sanity table's verdict on the mean headline score: the map under the fully
        randomised model keeps less than half of the original's rank order (mean Spearman < 0.5).
        """
        return mean < 0.5

    def inputs(self, images: Tensor) -> list[Tensor]:
        """The inputs whose maps are averaged into the map compared (MPRT: the image alone)."""
        return [images]

    def score(self, *, model, images, targets, saliency, masks, explainer):
        inputs = self.inputs(images)

        def maps(under) -> Tensor:
            return sum(explain(explainer, under, x, targets) for x in inputs) / len(inputs)

        # the map being scored is the original, unless maps are averaged over several inputs
        reference = saliency.double().cpu() if len(inputs) == 1 else maps(model)
        randomised = randomised_copy(model)
        groups = layer_groups(randomised, images)
        per_step = {}
        for name, members in reversed(groups) if self.order == "top_down" else groups:
            randomise(randomised.net, members, self.seed)
            step = maps(randomised)
            per_step[f"spearman@{name}"] = spearman(reference, step)
            per_step[f"ssim@{name}"] = ssim(reference, step)
        # the last step randomised every layer
        last = {"spearman": per_step[f"spearman@{name}"], "ssim": per_step[f"ssim@{name}"]}
        return last | per_step
