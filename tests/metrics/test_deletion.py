from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from metrics import create_metric
from metrics._curves import rise_blur
from tests.models import linear_toy


def _sigmoid(z):
    return 1 / (1 + math.exp(-z))


def _toy():
    # 1 channel, 2x2 image; p_0 = sigmoid(sum(w * x)) in normalised space.
    weight = torch.tensor([[[2.0, -1.0], [1.0, 0.5]]])
    images = torch.tensor([[[[1.0, 1.0], [1.0, 2.0]]]])
    saliency = torch.tensor([[[4.0, 1.0], [3.0, 2.0]]])  # order: (0,0), (1,0), (1,1), (0,1)
    return linear_toy(weight), images, torch.tensor([0]), saliency


def test_deletion_on_a_linear_toy_is_hand_computable():
    model, images, targets, saliency = _toy()
    scores = create_metric("deletion", steps=4)(
        model=model, images=images, targets=targets, saliency=saliency
    )
    # contributions w*x: (0,0) 2, (0,1) -1, (1,0) 1, (1,1) 1; deleting to 0 removes them in order
    curve = [_sigmoid(z) for z in (3.0, 1.0, 0.0, -1.0, 0.0)]
    auc = (sum(curve) - curve[0] / 2 - curve[-1] / 2) / 4
    assert scores["auc"].item() == pytest.approx(auc, rel=1e-6)
    # two pixels per step: points 0, 2, 4 of the same curve
    two = create_metric("deletion", steps=2)(
        model=model, images=images, targets=targets, saliency=saliency
    )
    assert two["auc"].item() == pytest.approx(
        (curve[0] / 2 + curve[2] + curve[4] / 2) / 2, rel=1e-6
    )
    logit = create_metric("deletion", steps=4, output="logit")(
        model=model, images=images, targets=targets, saliency=saliency
    )
    assert logit["auc"].item() == pytest.approx((3 / 2 + 1 + 0 - 1 + 0) / 4, rel=1e-6)


def test_bad_parameters():
    with pytest.raises(ValueError, match="unknown substrate"):
        create_metric("deletion", substrate="noise")
    with pytest.raises(ValueError, match="unknown output"):
        create_metric("insertion", output="odds")
    with pytest.raises(ValueError, match="steps"):
        create_metric("insertion", steps=0)


# --- RISE's evaluation.py (CausalMetric.single_run, gkern, auc), transcribed for any H*W ---------


def _gkern(klen, nsig):
    from scipy.ndimage import gaussian_filter

    inp = np.zeros((klen, klen))
    inp[klen // 2, klen // 2] = 1
    k = gaussian_filter(inp, nsig)
    kern = np.zeros((3, 3, klen, klen))
    kern[0, 0] = k
    kern[1, 1] = k
    kern[2, 2] = k
    return torch.from_numpy(kern.astype("float32"))


def _rise_auc(arr):
    return (arr.sum() - arr[0] / 2 - arr[-1] / 2) / (arr.shape[0] - 1)


def _rise_single_run(model, img_tensor, explanation, mode, step, substrate_fn):
    hw = explanation.size
    pred = model(img_tensor)
    _, c = torch.max(pred, 1)
    c = c.cpu().numpy()[0]
    n_steps = (hw + step - 1) // step
    if mode == "del":
        start, finish = img_tensor.clone(), substrate_fn(img_tensor)
    else:
        start, finish = substrate_fn(img_tensor), img_tensor.clone()
    scores = np.empty(n_steps + 1)
    salient_order = np.flip(np.argsort(explanation.reshape(-1, hw), axis=1), axis=-1)
    for i in range(n_steps + 1):
        pred = model(start)
        scores[i] = pred[0, c]
        if i < n_steps:
            coords = salient_order[:, step * i : step * (i + 1)]
            start.numpy().reshape(1, 3, hw)[0, :, coords] = finish.numpy().reshape(1, 3, hw)[
                0, :, coords
            ]
    return _rise_auc(scores), c


@pytest.mark.parametrize("name, mode", [("deletion", "del"), ("insertion", "ins")])
def test_agrees_with_the_rise_code_on_a_tie_free_map(small_cnn, name, mode):
    g = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, 12, 12, generator=g)
    saliency = torch.rand(2, 12, 12, generator=g)  # no ties

    kern = _gkern(11, 5)

    def blur(x):
        return torch.nn.functional.conv2d(x, kern, padding=11 // 2)

    def zeros(x):
        return torch.zeros_like(x)

    substrate_fn = zeros if mode == "del" else blur
    torch.testing.assert_close(rise_blur(images), blur(images))  # the same substrate

    def softmax_model(x):
        with torch.no_grad():
            return small_cnn.probabilities(x)

    expected, classes = zip(
        *(
            _rise_single_run(
                softmax_model, images[i : i + 1], saliency[i].numpy(), mode, 12, substrate_fn
            )
            for i in range(2)
        ),
        strict=True,
    )
    ours = create_metric(name, steps=12)(  # 144 pixels, 12 per step
        model=small_cnn, images=images, targets=torch.tensor(classes), saliency=saliency
    )
    np.testing.assert_allclose(ours["auc"].numpy(), np.array(expected), rtol=1e-5)


def test_every_point_comes_from_few_large_forwards(small_cnn):
    calls = []
    net = small_cnn.net
    handle = net.register_forward_pre_hook(lambda _m, inputs: calls.append(len(inputs[0])))
    try:
        images = torch.randn(4, 3, 12, 12, generator=torch.Generator().manual_seed(1))
        create_metric("deletion", steps=15, batch_size=64)(
            model=small_cnn,
            images=images,
            targets=torch.zeros(4, dtype=torch.long),
            saliency=torch.rand(4, 12, 12),
        )
    finally:
        handle.remove()
    assert sum(calls) == 4 * 16  # one row per image and point, nothing re-run
    assert max(calls) >= 16  # batched across images and steps (CPU threads take chunks)
