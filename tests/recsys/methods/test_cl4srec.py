"""CL4SRec augmentations and objective."""

from __future__ import annotations

import pytest
import torch

from tamis.core.config import ConfigError, from_dict
from tamis.recsys.methods.cl4srec import CL4SRecArgs, augment, crop, mask, reorder
from tamis.recsys.methods.contrastive import repad_left, unpad_left


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_crop_keeps_a_contiguous_window_of_the_right_length():
    items = torch.arange(1, 11)
    for seed in range(20):
        out = crop(items, 0.6, _gen(seed))
        assert len(out) == 6
        start = int(out[0]) - 1
        assert torch.equal(out, items[start : start + 6])
    assert len(crop(torch.tensor([5]), 0.2, _gen())) == 1


def test_mask_hides_gamma_share_but_never_the_last_item():
    items = torch.arange(1, 11)
    for seed in range(20):
        out = mask(items, 0.3, _gen(seed))
        assert int((out == 0).sum()) == 3 and out[-1] == 10
        kept = out != 0
        assert torch.equal(out[kept], items[kept])


def test_reorder_shuffles_one_span_only():
    items = torch.arange(1, 11)
    for seed in range(20):
        out = reorder(items, 0.6, _gen(seed))
        assert sorted(out.tolist()) == items.tolist()
        moved = (out != items).nonzero().flatten()
        if len(moved):
            assert int(moved.max() - moved.min()) < 6


def test_augment_keeps_left_padding_and_item_sets():
    seq = repad_left(
        [
            torch.tensor([3, 4, 5, 6]),
            torch.tensor([7]),
            torch.tensor([], dtype=torch.long),
        ],
        6,
    )
    args = CL4SRecArgs(augmentations=["reorder"])
    out = augment(seq, args, _gen())
    assert out.shape == seq.shape and (out[:, :2] == 0).all()
    for a, b in zip(unpad_left(out), unpad_left(seq), strict=True):
        assert sorted(a.tolist()) == sorted(b.tolist())


def test_args_validate_augmentation_names():
    with pytest.raises(ConfigError):
        from_dict(CL4SRecArgs, {"augmentations": ["rotate"]})
    with pytest.raises(ConfigError):
        from_dict(CL4SRecArgs, {"crop_eta": 0})
