import torch

from explainers import create_explainer


def test_center_is_a_centred_gaussian():
    maps = create_explainer("center", sigma=0.25).explain(
        None, torch.zeros(1, 3, 9, 9), torch.tensor([0])
    )[0]
    assert maps.argmax().item() == 4 * 9 + 4 and maps.max().item() == 1.0
    torch.testing.assert_close(maps, maps.flip(0))
    torch.testing.assert_close(maps, maps.T)
    s = 0.25 * 9
    torch.testing.assert_close(maps[4, 0], torch.exp(torch.tensor(-(4.0**2) / (2 * s * s))))
