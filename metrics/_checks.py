"""Input validation shared by every metric: one message per image, so one bad map loses one image."""

from __future__ import annotations

from torch import Tensor


def input_problems(
    images: Tensor, saliency: Tensor, masks: Tensor | None = None
) -> list[str | None]:
    """One entry per image of the batch: None if its inputs are usable, else what is wrong.

    Checks: images [B,C,H,W]; saliency [B,h,w] with the image's aspect ratio (smaller maps are
    resized by the metrics), finite; masks (when given) [B,H,W] at the image's size. A problem with
    a whole tensor's shape is reported for every image.
    """
    if images.dim() != 4:
        return [f"images have shape {tuple(images.shape)}, expected [B,C,H,W]"] * max(
            1, len(images)
        )
    batch, (height, width) = images.shape[0], images.shape[-2:]
    whole = None
    if saliency.dim() != 3:
        whole = f"saliency has shape {tuple(saliency.shape)}, expected [B,h,w] (one map per image)"
    elif saliency.shape[0] != batch:
        whole = f"saliency holds {saliency.shape[0]} maps for a batch of {batch} images"
    elif saliency.shape[1] * width != saliency.shape[2] * height or 0 in saliency.shape:
        whole = (
            f"saliency maps are {saliency.shape[1]}x{saliency.shape[2]}, images {height}x{width}: "
            "a map must have the image's aspect ratio"
        )
    elif masks is not None and (masks.dim() != 3 or masks.shape[0] != batch):
        whole = f"masks have shape {tuple(masks.shape)}, expected [{batch},{height},{width}]"
    elif masks is not None and tuple(masks.shape[1:]) != (height, width):
        whole = (
            f"masks are {masks.shape[1]}x{masks.shape[2]} but images {height}x{width}: "
            "load the masks at the image's size"
        )
    if whole is not None:
        return [f"image {i} of the batch: {whole}" for i in range(batch)]
    problems: list[str | None] = []
    nan = saliency.reshape(batch, -1).isnan().any(1).tolist()
    inf = saliency.reshape(batch, -1).isinf().any(1).tolist()
    for i in range(batch):
        if nan[i] or inf[i]:
            problems.append(
                f"image {i} of the batch: saliency contains {'NaN' if nan[i] else 'inf'}; "
                "the explainer failed on it"
            )
        else:
            problems.append(None)
    return problems


def check_inputs(
    images: Tensor, saliency: Tensor, masks: Tensor | None, *, needs_masks: bool, metric: str
) -> None:
    """Raise ValueError naming every bad image (the runner drops them with input_problems first)."""
    if needs_masks and masks is None:
        raise ValueError(f"metric {metric!r} needs ground-truth masks: use a dataset with masks")
    bad = [p for p in input_problems(images, saliency, masks) if p is not None]
    if bad:
        raise ValueError(f"metric {metric!r}: " + "; ".join(dict.fromkeys(bad)))
