"""SRA-CL: synthesis, substitution, NT-Xent, and the trainer plug-in."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tamis.recsys.config import EvalConfig, TrainConfig
from tamis.recsys.methods.contrastive import (
    encode_by_length,
    length_groups,
    nt_xent,
    stack_left,
    trim_left,
)
from tamis.recsys.methods.sracl import (
    SRACL,
    AttentionSynthesiser,
    SRACLArgs,
    sample_neighbours,
    substitute_items,
    substitution_table,
    synthesis_weights,
)
from tamis.recsys.models.base import build_model
from tamis.recsys.objectives import build_objective
from tamis.recsys.semantic.pipeline import Semantics
from tamis.recsys.train import fit_model

TINY_SASREC = {"hidden": 16, "heads": 1, "inner": 32, "max_len": 8}


def _semantics_args(tmp_path, **extra):
    sem = {"encoder": "tfidf:16", "cache_dir": str(tmp_path / "sem"), "k": 4}
    return {"semantics": sem, **extra}


# ---------------------------------------------------------------------------
# Maths


def test_nt_xent_matches_a_hand_computation():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # Row 0 = a0: scores to [a1, b0, b1] = [0, 1, 0]; positive b0.
    expected = -math.log(math.e / (math.e + 2))
    assert nt_xent(a, b).item() == pytest.approx(expected, rel=1e-6)
    # Temperature divides the scores.
    expected_t = -math.log(math.e**2 / (math.e**2 + 2))
    assert nt_xent(a, b, temperature=0.5).item() == pytest.approx(expected_t, rel=1e-6)


def test_nt_xent_prefers_aligned_pairs_and_is_symmetric():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(8, 4, generator=g)
    aligned = nt_xent(a, a + 0.01 * torch.randn(8, 4, generator=g))
    shuffled = nt_xent(a, a[torch.randperm(8, generator=g)])
    assert aligned < shuffled
    b = torch.randn(8, 4, generator=g)
    assert nt_xent(a, b).item() == pytest.approx(nt_xent(b, a).item(), rel=1e-6)
    with pytest.raises(ValueError, match="N >= 2"):
        nt_xent(a[:1], b[:1])


def test_synthesis_weights_sum_to_one_over_valid_neighbours():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(50, 6, generator=g)
    valid = torch.rand(50, 6, generator=g) > 0.3
    valid[0] = False  # a row without neighbours
    keep = torch.rand(50, 6, generator=g) > 0.5
    w = synthesis_weights(logits, valid, keep)
    rows = valid.any(1)
    torch.testing.assert_close(w[rows].sum(1), torch.ones(int(rows.sum())))
    assert (w[~valid] == 0).all() and (w[0] == 0).all()
    # Dropped neighbours get no weight unless every valid one was dropped.
    some_kept = (valid & keep).any(1)
    assert (w[some_kept][~(valid & keep)[some_kept]] == 0).all()


def test_attention_synthesiser_weights_sum_to_one_in_train_and_eval():
    g = torch.Generator().manual_seed(2)
    synth = AttentionSynthesiser(12, 4, dropout=0.5, generator=g)
    z_a, z_n = torch.randn(10, 12), torch.randn(10, 5, 12)
    valid = torch.ones(10, 5, dtype=torch.bool)
    valid[3, 2:] = False
    for training in (True, False):
        synth.train(training)
        w = synth(z_a, z_n, valid)
        torch.testing.assert_close(w.sum(1), torch.ones(10))
        assert (w[3, 2:] == 0).all()
    # GAT form: e_j = LeakyReLU(a^T [W z_a ; W z_j]).
    e = synth.logits(z_a, z_n)
    manual = torch.nn.functional.leaky_relu(
        torch.cat([(z_a @ synth.W.T)[:, None].expand(-1, 5, -1), z_n @ synth.W.T], -1)
        @ synth.a,
        0.2,
    )
    torch.testing.assert_close(e, manual)
    mean = AttentionSynthesiser(12, 4, 0.0, g, mode="mean")
    torch.testing.assert_close(mean(z_a, z_n, valid)[3, :2], torch.full((2,), 0.5))


def test_substitution_draws_only_from_the_items_neighbours():
    # Item i's neighbours (dense ids): a fixed, distinctive set per item.
    neighbours = np.array([[1, 2, -1], [3, -1, -1], [0, 1, 3], [-1, -1, -1]])
    table, counts = substitution_table(neighbours)
    assert counts.tolist() == [0, 2, 1, 3, 0]
    seq = torch.tensor([[0, 1, 2, 3, 4, 1, 3]] * 400)  # padded ids, 0 = padding
    g = torch.Generator().manual_seed(0)
    out = substitute_items(seq, table, counts, rate=0.5, generator=g)
    allowed = {0: {0}, 1: {2, 3}, 2: {4}, 3: {1, 2, 4}, 4: set()}
    changed = out != seq
    for old, new in zip(seq[changed].tolist(), out[changed].tolist(), strict=True):
        assert new in allowed[old]
    assert (out[:, 0] == 0).all() and (out[:, 4] == 5 - 1).all()  # pad / no nbrs
    rate = changed[:, [1, 2, 3, 5, 6]].float().mean().item()
    assert 0.45 < rate < 0.55
    every = substitute_items(seq, table, counts, 1.0, g)
    assert set(every[:, 3].tolist()) == {1, 2, 4}  # uniform over all 3 neighbours
    same = substitute_items(seq, table, counts, 0.0, g)
    assert torch.equal(same, seq)


def test_sample_neighbours_keeps_valid_entries_of_the_row():
    nb = torch.tensor([[5, 6, 7, 8], [9, -1, -1, -1]])
    g = torch.Generator().manual_seed(0)
    out = sample_neighbours(nb, 2, g)
    assert set(out[0].tolist()) <= {5, 6, 7, 8} and len(set(out[0].tolist())) == 2
    assert sorted(out[1].tolist()) == [-1, 9]
    assert torch.equal(sample_neighbours(nb, 0, g), nb)


def test_stack_left_pads_on_the_left():
    a = torch.tensor([[0, 3], [2, 3]])
    b = torch.tensor([[0, 0, 1, 2]])
    assert trim_left(b).tolist() == [[1, 2]]
    assert stack_left([a, b]).tolist() == [[0, 0, 0, 3], [0, 0, 2, 3], [0, 0, 1, 2]]


# ---------------------------------------------------------------------------
# Objective


def _tiny_semantics(n_samples: int, n_items: int, k: int = 3) -> Semantics:
    rng = np.random.default_rng(0)
    users = np.arange(n_samples) // 2
    nb = (np.arange(n_samples)[:, None] + 2 * np.arange(1, k + 1)) % n_samples
    item_nb = (np.arange(n_items)[:, None] + np.arange(1, 3)) % n_items
    return Semantics(
        rng.normal(size=(n_items, 8)).astype(np.float32),
        rng.normal(size=(n_samples, 8)).astype(np.float32),
        item_nb,
        nb,
        users,
        {},
    )


def _ce(model, h, target):
    return torch.nn.functional.cross_entropy(h @ model.item_embedding.T, target)


def test_unique_neighbours_are_encoded_once_per_batch():
    n_items, n_samples = 12, 10
    sem = _tiny_semantics(n_samples, n_items)
    padded = torch.randint(1, n_items + 1, (n_samples, 5))
    model = build_model("sasrec", 1, n_items, TINY_SASREC)
    core = SRACL(SRACLArgs(), sem, padded, _ce)
    rows = []
    original = model.encode
    model.encode = lambda seq: (rows.append(seq.shape[0]), original(seq))[1]
    samples = torch.arange(6)
    batch = {
        "seq": padded[samples],
        "sample": samples,
        "target": torch.zeros(6, dtype=torch.long),
    }
    loss, logs = core(model, batch)
    unique = torch.unique(torch.as_tensor(sem.prefix_neighbours)[samples]).numel()
    assert rows == [3 * 6 + unique]  # one backbone call: anchors, 2 views, uniques
    assert logs["unique_neighbours"] == unique
    loss.backward()
    assert (
        core.synthesiser.W.grad is not None and core.synthesiser.W.grad.abs().sum() > 0
    )


def test_memory_mode_reads_only_seen_samples_and_costs_no_neighbour_pass():
    n_items, n_samples = 12, 10
    sem = _tiny_semantics(n_samples, n_items)
    padded = torch.randint(1, n_items + 1, (n_samples, 5))
    model = build_model("sasrec", 1, n_items, TINY_SASREC)
    core = SRACL(SRACLArgs(neighbour_encoding="memory"), sem, padded, _ce, hidden=16)
    samples = torch.arange(4)
    batch = {
        "seq": padded[samples],
        "sample": samples,
        "target": torch.zeros(4, dtype=torch.long),
    }
    _, logs = core(model, batch)
    assert "user_cl" not in logs  # nothing remembered yet
    assert core.seen[:4].all() and not core.seen[4:].any()
    assert torch.count_nonzero(core.memory[:4]) > 0
    samples = torch.arange(4, 8)  # neighbours 6.. and 0..3: some are remembered
    batch = {
        "seq": padded[samples],
        "sample": samples,
        "target": torch.zeros(4, dtype=torch.long),
    }
    _, logs = core(model, batch)
    assert "user_cl" in logs


def test_generator_state_travels_with_the_state_dict():
    sem = _tiny_semantics(10, 12)
    padded = torch.randint(1, 13, (10, 5))
    core = SRACL(SRACLArgs(seed=3), sem, padded, _ce)
    state = core.state_dict()
    draw = torch.rand(3, generator=core.generator)
    other = SRACL(SRACLArgs(seed=99), sem, padded, _ce)
    other.load_state_dict(state)
    assert torch.equal(torch.rand(3, generator=other.generator), draw)


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec"])
def test_zero_weights_reproduce_the_plain_backbone_exactly(small, tmp_path, backbone):
    split = small
    args = TINY_SASREC if backbone == "sasrec" else {"hidden": 16, "max_len": 8}
    train = TrainConfig(epochs=2, batch_size=32, patience=5)
    runs = {}
    for method, margs in [
        ("next-item", {}),
        ("sra-cl", _semantics_args(tmp_path, alpha=0.0, beta=0.0)),
        ("cl4srec", {"weight": 0.0}),
    ]:
        torch.manual_seed(7)
        model = build_model(backbone, split.n_users, split.n_items, args)
        result = fit_model(model, split, train, EvalConfig(), method, margs, seed=7)
        runs[method] = (model.state_dict(), [h["loss"] for h in result.history])
    plain_state, plain_loss = runs["next-item"]
    for method in ("sra-cl", "cl4srec"):
        state, loss = runs[method]
        assert loss == plain_loss, method
        for key, value in plain_state.items():
            assert torch.equal(value, state[key]), (method, key)


def test_sracl_trains_on_sasrec_and_gru4rec_with_both_terms(small, tmp_path):
    split = small
    for backbone, args in [
        ("sasrec", TINY_SASREC),
        ("gru4rec", {"hidden": 16, "max_len": 8}),
    ]:
        torch.manual_seed(0)
        model = build_model(backbone, split.n_users, split.n_items, args)
        result = fit_model(
            model,
            split,
            TrainConfig(epochs=2, batch_size=32),
            EvalConfig(),
            "sra-cl",
            _semantics_args(tmp_path),
            seed=0,
        )
        last = result.history[-1]
        for key in ("ce", "item_cl", "user_cl"):
            assert np.isfinite(last[key]) and last[key] > 0, (backbone, key)
        assert last["loss"] == pytest.approx(
            last["ce"] + 0.1 * last["item_cl"] + 0.1 * last["user_cl"], rel=1e-4
        )
        # The run records which summaries and encoder built the semantics.
        assert result.objective_info["summary_source"]
        assert result.objective_info["encoder"]


def test_objective_rejects_non_sequential_models_and_bad_args(topics, tmp_path):
    _, _, split = topics
    bpr = build_model("bpr", split.n_users, split.n_items, {})
    with pytest.raises(ValueError, match="encode"):
        build_objective("sra-cl", _semantics_args(tmp_path), bpr, split)
    sas = build_model("sasrec", split.n_users, split.n_items, TINY_SASREC)
    with pytest.raises(ValueError, match="method_args"):
        build_objective("sra-cl", {"alpha": -1}, sas, split)


# ---------------------------------------------------------------------------
# Length-grouped encoding


def test_length_groups_separate_short_rows_from_long_ones():
    lengths = torch.tensor([1] * 100 + [20] * 2)
    assert length_groups(lengths, max_groups=2, call_cost=0) == [100, 2]
    assert length_groups(lengths, max_groups=1, call_cost=0) == [102]
    # A call costs more than the padding it saves: stay with one call.
    assert length_groups(lengths, max_groups=4, call_cost=10_000) == [102]
    assert length_groups(torch.full((7,), 5), max_groups=4) == [7]
    # Cost model: 3 groups of [1..1], [2..3], [8] -> 4*1 + 3*3 + 1*8 = 21.
    sizes = length_groups(torch.tensor([1, 1, 1, 1, 2, 3, 3, 8]), 3, call_cost=0)
    assert sizes == [4, 3, 1]


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec"])
def test_encode_by_length_equals_one_padded_call(backbone):
    torch.manual_seed(0)
    model = build_model(backbone, 1, 30, TINY_SASREC if backbone == "sasrec" else {})
    model.eval()
    lengths = torch.tensor([1, 8, 2, 1, 7, 3, 1, 8, 2])
    seq = torch.zeros(len(lengths), 8, dtype=torch.long)
    for row, n in enumerate(lengths.tolist()):
        seq[row, 8 - n :] = torch.randint(1, 31, (n,))
    widths = []
    original = model.encode
    model.encode = lambda s: (widths.append(tuple(s.shape)), original(s))[1]
    grouped = encode_by_length(model.encode, seq, max_groups=3, call_cost=0)
    assert len(widths) == 3 and sum(r for r, _ in widths) == len(seq)
    assert sum(r * w for r, w in widths) < seq.numel()  # less padding
    torch.testing.assert_close(grouped, original(seq), rtol=1e-5, atol=1e-6)
