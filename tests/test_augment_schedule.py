"""The final recipe's pieces: per-sample augmentation (aligned masks, seeded, off at evaluation), the warm-up +
cosine schedule, and the search recipe's defaults left bit-for-bit as they were."""
from __future__ import annotations

import math

import pytest
import torch

from nas_med.arch import ArchSpec, StageSpec, build
from nas_med.augment import POLICIES, augment_batch, check_policy
from nas_med.data import load_dataset
from nas_med.errors import UserError
from nas_med.final.recipe import FinalRecipe, apply_recipe, check_folds
from nas_med.schedule import lr_factor, make_optimizer, make_scheduler
from nas_med.train import TrainConfig, train


def _batch(b: int = 8, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (b, 1, size, size), generator=gen, dtype=torch.uint8)
    masks = torch.zeros(b, size, size, dtype=torch.bool)
    for i in range(b):  # a bright square marked by its mask
        r, c = 2 + i % 5, 3 + i % 4
        images[i, 0, r:r + 6, c:c + 6] = 255
        images[i, 0, :, :] = torch.where(images[i, 0] == 255, 255, images[i, 0] // 4)
        masks[i, r:r + 6, c:c + 6] = True
    return images, masks


@pytest.mark.parametrize("policy", [p for p in POLICIES if p != "none"])
def test_masks_follow_their_image_per_sample(policy):
    images, masks = _batch()
    # geometry only (no intensity jitter), so the mask's pixels stay the bright ones
    geo = POLICIES[policy].__class__(rotate=POLICIES[policy].rotate, scale=POLICIES[policy].scale,
                                     shift=POLICIES[policy].shift, flip=POLICIES[policy].flip)
    out, out_masks = augment_batch(images, geo, torch.Generator().manual_seed(1), masks=masks)
    assert out.shape == images.shape and out_masks.shape == masks.shape
    for i in range(len(images)):
        inside = out[i, 0][out_masks[i]]
        outside = out[i, 0][~out_masks[i]]
        assert inside.numel() > 0
        assert inside.mean() > outside.mean() + 100  # the mask still covers the bright square
    # per sample: two samples with the same image are transformed differently
    same = images[:1].repeat(4, 1, 1, 1)
    twins, _ = augment_batch(same, policy, torch.Generator().manual_seed(2))
    assert not torch.equal(twins[0], twins[1])


def test_seeded_and_none_is_identity():
    images, masks = _batch()
    a, _ = augment_batch(images, "medium", torch.Generator().manual_seed(5))
    b, _ = augment_batch(images, "medium", torch.Generator().manual_seed(5))
    c, _ = augment_batch(images, "medium", torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert 0 <= float(a.min()) and float(a.max()) <= 255
    same, same_masks = augment_batch(images, "none", torch.Generator(), masks=masks)
    assert same is images and same_masks is masks


def test_flips_off_keeps_laterality():
    images = torch.zeros(64, 1, 16, 16, dtype=torch.uint8)
    images[:, :, :, :8] = 255  # bright left half
    flipping = POLICIES["light"].__class__(flip=1.0)
    flipped, _ = augment_batch(images, flipping, torch.Generator().manual_seed(0))
    kept, _ = augment_batch(images, flipping, torch.Generator().manual_seed(0), flips=False)
    assert flipped[:, :, :, 8:].mean() > 200
    assert kept[:, :, :, :8].mean() > 200


def test_unknown_policy_is_a_user_error():
    with pytest.raises(UserError, match="unknown augmentation policy 'heavy'"):
        check_policy("heavy")
    with pytest.raises(UserError):
        FinalRecipe(augment="heavy")


def test_cosine_schedule_with_linear_warmup():
    total, warmup = 100, 0.1
    f = [lr_factor(s, total, "cosine", warmup) for s in range(total)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(b > a for a, b in zip(f[:10], f[1:10]))  # rising through the warm-up
    assert f[10] == pytest.approx(1.0)
    assert f[10 + 45] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert all(b <= a for a, b in zip(f[10:], f[11:]))  # falling after it
    assert f[-1] < 0.001
    assert lr_factor(7, total, "constant", 0.3) == 1.0
    model = torch.nn.Linear(2, 1)
    opt = make_optimizer(model.parameters(), "adamw", 2e-3, 1e-4)
    sched = make_scheduler(opt, "cosine", warmup, total)
    seen = []
    for _ in range(total):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([2e-3 * x for x in f])
    assert make_scheduler(opt, "constant", 0.0, total) is None
    with pytest.raises(UserError):
        make_scheduler(opt, "step", 0.0, total)


def test_search_defaults_train_bit_for_bit_and_old_configs_load():
    data = load_dataset("synthetic", size=16)
    spec = ArchSpec(1, 4, 16, stages=(StageSpec("simple", 8), StageSpec("simple", 16)))
    old = {"epochs": 2, "lr": 1e-3, "batch_size": 32, "weight_decay": 0.0, "class_weighting": False,
           "device": "cpu", "amp": False, "seed": 0}
    cfg = TrainConfig.from_dict(old)
    assert (cfg.optimizer, cfg.schedule, cfg.warmup, cfg.augment, cfg.patience) == ("adam", "constant", 0.0,
                                                                                     "none", 0)
    torch.manual_seed(0)
    a = train(build(spec), data, cfg)
    # the same run by hand with plain Adam: equal weights
    torch.manual_seed(0)
    b = train(build(spec), data, TrainConfig.from_dict({**old, "optimizer": "adam"}))
    for (ka, va), (_, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(va, vb), ka


def test_final_recipe_trains_with_augmentation_and_patience():
    data = load_dataset("synthetic", size=16)
    spec = ArchSpec(1, 4, 16, stages=(StageSpec("simple", 8), StageSpec("simple", 16)))
    recipe = FinalRecipe(epochs=30, augment="light", patience=2)
    cfg = apply_recipe(TrainConfig(device="cpu", precision="fp32"), recipe)
    assert (cfg.optimizer, cfg.schedule, cfg.epochs, cfg.augment) == ("adamw", "cosine", 30, "light")
    result = train(build(spec), data, cfg)
    assert len(result.history) <= 30
    assert len(result.history) - 1 - result.best_epoch <= 2
    assert apply_recipe(cfg, None) is cfg


@pytest.mark.parametrize("bad", [0, -1, 21, True, "3"])
def test_bad_folds(bad):
    with pytest.raises(UserError, match="--ensemble"):
        check_folds(bad)


def test_policy_in_a_search_space():
    from nas_med.space import parse_space, sample_training

    space = parse_space({"arch": {}, "train": {"augment": ["none", "light"]}})
    assert space.train["augment"] == ["none", "light"]
    with pytest.raises(UserError, match="heavy"):
        parse_space({"arch": {}, "train": {"augment": ["heavy"]}})

    class Fixed:
        def suggest_categorical(self, name, choices):
            return choices[-1]

    assert sample_training(Fixed(), space)["augment"] == "light"


def test_auto_policy_is_chosen_on_validation_not_by_size():
    from nas_med.augment import check_policy

    assert FinalRecipe().augment == ("none", "light")  # chosen per model on validation (nas_med.settle)
    assert FinalRecipe(augment="auto").augment == ("none", "light")  # what an older study stored
    assert check_policy("strong") == "strong"
    data = load_dataset("synthetic", size=16)
    spec = ArchSpec(1, 4, 16, stages=(StageSpec("simple", 8),))
    with pytest.raises(UserError, match="one training run needs one policy"):
        train(build(spec), data, TrainConfig(epochs=1, augment="auto", device="cpu"))
