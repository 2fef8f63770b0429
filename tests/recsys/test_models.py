"""Model contracts (every registered model) and model-specific invariants."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from tamis.recsys.config import EvalConfig, TrainConfig
from tamis.recsys.data import InteractionData, SequentialSplit, leave_one_out
from tamis.recsys.evaluate import evaluate
from tamis.recsys.models import MODELS, build_model
from tamis.recsys.models.gru4rec import right_align
from tamis.recsys.models.layers import fast_dropout, keep_mask
from tamis.recsys.models.lightgcn import normalized_adjacency, propagate
from tamis.recsys.train import fit_model

TINY = {"sasrec": {"hidden": 16, "inner": 32, "max_len": 8}, "gru4rec": {"hidden": 16}}


def _fitted(name: str, split: SequentialSplit):  # noqa: ANN202
    torch.manual_seed(0)
    model = build_model(name, split.n_users, split.n_items, TINY.get(name, {}))
    train = TrainConfig(epochs=1, batch_size=64)
    loss = {"loss": "bpr"} if name in ("bpr", "lightgcn") else {}
    if model.trainable:
        return model.fit(split, train=train, objective_args=loss)
    return model.fit(split)


@pytest.mark.parametrize("name", MODELS.names())
def test_contract(name: str, planted_split: SequentialSplit) -> None:
    model = _fitted(name, planted_split)
    assert model.n_items == planted_split.n_items
    seq = torch.from_numpy(planted_split.test.padded(8))[:5]
    batch = {"user": torch.from_numpy(planted_split.test.users[:5]), "seq": seq}
    model.eval()
    scores = model.score(batch)
    assert scores.shape == (5, planted_split.n_items)
    assert torch.isfinite(scores).all()
    top = model.recommend(batch, k=4)
    assert top.shape == (5, 4)
    for row, items in zip(seq.tolist(), top.tolist(), strict=True):
        seen = {i - 1 for i in row if i > 0}
        assert not seen & set(items), "recommend must skip history items"


@pytest.mark.parametrize("name", ["sasrec", "gru4rec"])
def test_sequential_encode_ignores_padding_width(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, 3, 20, TINY[name]).eval()
    seq = torch.tensor([[0, 0, 3, 4, 5], [0, 7, 1, 2, 9]])
    wider = torch.cat([torch.zeros(2, 3, dtype=torch.long), seq], dim=1)
    assert torch.allclose(model.encode(seq), model.encode(wider), atol=1e-5)
    assert model.encode(seq).shape == (2, 16)
    assert model.item_embedding.shape == (20, 16)


def test_sasrec_last_block_shortcut_equals_full_computation() -> None:
    torch.manual_seed(0)
    model = build_model("sasrec", 3, 20, TINY["sasrec"]).eval()
    seq = torch.tensor([[0, 0, 3, 4, 5], [0, 7, 1, 2, 9]])
    from tamis.recsys.models.sasrec import attention_mask

    x = model.norm(model.item_emb(seq) + model.pos_emb.weight[-5:])
    for block in model.blocks:
        x = block(x, attention_mask(seq), last_only=False)
    assert torch.allclose(x[:, -1], model.encode(seq), atol=1e-5)


def test_sasrec_output_does_not_depend_on_padded_rows_or_future() -> None:
    torch.manual_seed(0)
    model = build_model("sasrec", 3, 20, TINY["sasrec"]).eval()
    h1 = model.encode(torch.tensor([[0, 0, 0, 0, 6]]))
    h2 = model.encode(torch.tensor([[0, 0, 0, 0, 6], [3, 4, 5, 6, 7]]))[:1]
    assert torch.allclose(h1, h2, atol=1e-6)
    empty = model.encode(torch.zeros(1, 5, dtype=torch.long))
    assert torch.isfinite(empty).all()


def test_gru4rec_recurrent_init_switch() -> None:
    # Orthogonal init gives the (3H, H) recurrent matrix orthonormal columns;
    # xavier_uniform (RecBole's choice) does not.
    def gram(init: str) -> torch.Tensor:
        torch.manual_seed(0)
        args = {"hidden": 16, "gru_hidden": 12, "recurrent_init": init}
        w = build_model("gru4rec", 3, 20, args).gru.weight_hh_l0.detach()
        return w.T @ w

    eye = torch.eye(12)
    assert torch.allclose(gram("orthogonal"), eye, atol=1e-5)
    assert not torch.allclose(gram("xavier_uniform"), eye, atol=1e-2)


def test_right_align() -> None:
    right, lengths = right_align(
        torch.tensor([[0, 0, 1, 2], [3, 4, 5, 6], [0, 0, 0, 0]])
    )
    assert right.tolist() == [[1, 2, 0, 0], [3, 4, 5, 6], [0, 0, 0, 0]]
    assert lengths.tolist() == [2, 4, 0]


def test_fast_dropout_keeps_expectation_and_rate() -> None:
    torch.manual_seed(0)
    x = torch.ones(200_000)
    y = fast_dropout(x, 0.5, training=True)
    assert abs(float((y == 0).float().mean()) - 0.5) < 0.01
    assert abs(float(y.mean()) - 1.0) < 0.02
    assert torch.equal(fast_dropout(x, 0.5, training=False), x)
    assert keep_mask((3, 5), 0.25, torch.device("cpu")).shape == (3, 5)


def test_lightgcn_propagation_closed_form() -> None:
    train = sp.csr_matrix(np.array([[1, 0], [1, 1]], dtype=np.float32))
    adj = normalized_adjacency(train).to_dense()
    # Nodes: u0, u1, i0, i1; degrees 1, 2, 2, 1.
    expected = np.zeros((4, 4), dtype=np.float32)
    for u, i in [(0, 2), (1, 2), (1, 3)]:
        deg = [1, 2, 2, 1]
        expected[u, i] = expected[i, u] = 1 / np.sqrt(deg[u] * deg[i])
    assert np.allclose(adj.numpy(), expected, atol=1e-6)
    emb = torch.eye(4)
    out = propagate(adj.to_sparse_csr(), emb, 2)
    a = torch.from_numpy(expected)
    assert torch.allclose(out, (emb + a @ emb + a @ a @ emb) / 3, atol=1e-6)


def _handmade_split() -> SequentialSplit:
    users = ["a"] * 5 + ["b"] * 5 + ["c"] * 5
    items = list("xyzpq") + list("xywpq") + list("zwxpq")
    return leave_one_out(InteractionData.from_raw(users, items))


def test_pop_counts_training_items_only() -> None:
    split = _handmade_split()
    model = build_model("pop", 3, split.n_items, {}).fit(split)
    counts = {split.data.item_ids[i]: c for i, c in enumerate(model.counts.tolist())}
    assert counts == {"x": 3, "y": 2, "z": 2, "w": 2, "p": 0, "q": 0}


def test_sknn_scores_are_summed_cosine_similarities() -> None:
    split = _handmade_split()  # training sessions: a={x,y,z}, b={x,y,w}, c={z,w,x}
    model = build_model("sknn", 3, split.n_items, {"neighbours": 1}).fit(split)
    ids = split.data.item_index
    seq = torch.tensor([[ids["x"] + 1, ids["y"] + 1]])
    scores = model.score({"user": torch.tensor([0]), "seq": seq})[0]
    # Own session a is excluded; b has cosine 2/sqrt(2*3), c has 1/sqrt(6): k=1 -> b.
    sim = 2 / np.sqrt(6)
    for item in "xyw":
        assert scores[ids[item]].item() == pytest.approx(sim, rel=1e-5)
    assert scores[ids["z"]].item() == 0.0


def test_itemknn_scores_are_cosines_to_history() -> None:
    split = _handmade_split()
    model = build_model("itemknn", 3, split.n_items, {"neighbours": 10}).fit(split)
    ids = split.data.item_index
    seq = torch.tensor([[ids["w"] + 1]])
    scores = model.score({"user": torch.tensor([0]), "seq": seq})[0]
    # w is in sessions b, c; x in a, b, c -> cos = 2 / sqrt(2 * 3).
    assert scores[ids["x"]].item() == pytest.approx(2 / np.sqrt(6), rel=1e-5)
    assert scores[ids["w"]].item() == 0.0  # self excluded


@pytest.mark.slow
def test_sasrec_learns_the_planted_successor(planted_split: SequentialSplit) -> None:
    torch.manual_seed(0)
    model = build_model(
        "sasrec",
        planted_split.n_users,
        planted_split.n_items,
        {"hidden": 32, "inner": 64, "max_len": 10, "dropout": 0.1, "attn_dropout": 0.1},
    )
    fit_model(
        model,
        planted_split,
        TrainConfig(epochs=15, batch_size=64, lr=0.01, patience=4),
        EvalConfig(ks=[1, 10]),
    )
    metrics, _ = evaluate(model, planted_split.test, [1, 10], max_len=10)
    # Next = last + 1 with probability 0.9 (plus chance hits): far above 1/30.
    assert metrics["hr@1"] > 0.6
