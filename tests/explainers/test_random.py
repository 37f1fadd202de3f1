import torch

from explainers import create_explainer


def test_random_is_uniform_seeded_per_image_and_changes_with_the_seed():
    images = torch.randn(4, 3, 16, 16)
    maps = create_explainer("random", seed=1).explain(
        None, images, torch.zeros(4, dtype=torch.long)
    )
    assert (maps >= 0).all() and (maps < 1).all()
    assert abs(maps.mean().item() - 0.5) < 0.05
    assert not torch.equal(maps[0], maps[1]), "different images get different maps"
    other = create_explainer("random", seed=2).explain(
        None, images, torch.zeros(4, dtype=torch.long)
    )
    assert not torch.equal(maps, other)
