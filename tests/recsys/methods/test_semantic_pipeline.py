"""Semantic pipeline: item text, summaries, caching, retrieval pool."""

from __future__ import annotations

import numpy as np
import pytest

from tamis.core.config import ConfigError, from_dict
from tamis.recsys.semantic.pipeline import (
    Semantics,
    SemanticsConfig,
    build_semantics,
    prefix_item_lists,
    semantics_for_split,
)
from tamis.recsys.semantic.texts import item_texts, summary_prompt, template_summary
from tamis.text.embed import TfidfSvdEncoder


class CountingEncoder(TfidfSvdEncoder):
    """TF-IDF encoder that counts the texts it encodes."""

    def __init__(self):
        super().__init__(dim=16, seed=0)
        self.encoded = 0

    def encode(self, texts, progress=False):
        self.encoded += len(texts)
        return super().encode(texts, progress)


def _samples(split):
    s = split.training_samples()
    return s.users, s.lengths, s.flat, s.user_offsets


def test_item_texts_put_the_title_first_and_join_lists():
    features = {
        "categories": [["Lab", "Glass"], None],
        "movie_title": [["L.A.", "Confidential"], ["Heat"]],
    }
    texts = item_texts(features, ["a", "b"])
    assert texts == ["L.A. Confidential. categories: Lab, Glass", "Heat"]
    assert item_texts({}, ["x"]) == ["item x"]
    with pytest.raises(ValueError, match="'brand' not in item features"):
        item_texts(features, ["a", "b"], fields=["brand"])


def test_template_summary_lists_recent_items_newest_first():
    assert template_summary(["a", "b", "c"], max_items=2) == "Interacted with: c; b"
    prompt = summary_prompt(["t1", "t2"], words=50)
    assert "- t1\n- t2" in prompt and "50 words" in prompt


def test_prefix_item_lists_are_training_prefixes(topics):
    _, _, split = topics
    users, lengths, flat, offsets = _samples(split)
    lists = prefix_item_lists(users, lengths, flat, offsets, last=3)
    s = split.training_samples()
    for i in (0, 5, len(s) - 1):
        np.testing.assert_array_equal(lists[i], s.prefix(i)[-3:])


def test_semantics_known_answer_and_no_same_user_neighbours(topics, tmp_path):
    data, topic, split = topics
    config = from_dict(SemanticsConfig, {"cache_dir": str(tmp_path), "k": 5})
    sem = semantics_for_split(split, config_with_encoder(config))
    n_samples = len(split.training_samples())
    assert sem.prefix_neighbours.shape == (n_samples, 5)
    assert sem.item_neighbours.shape == (data.n_items, 10)
    # Items: neighbours are same-topic items, never the item itself.
    nb = sem.item_neighbours
    assert (nb != np.arange(data.n_items)[:, None]).all()
    assert (topic[nb[:, :5]] == topic[:, None]).mean() > 0.95
    # Prefixes: never the same user, and the pool is training prefixes only.
    assert sem.same_user_share() == 0.0
    assert ((sem.prefix_neighbours >= 0) & (sem.prefix_neighbours < n_samples)).all()


def config_with_encoder(config: SemanticsConfig) -> SemanticsConfig:
    config.encoder = "tfidf:16"
    return config


def test_without_exclusion_same_user_prefixes_dominate(topics, tmp_path):
    _, _, split = topics
    users, lengths, flat, offsets = _samples(split)
    data = split.data
    on = SemanticsConfig(cache_dir=str(tmp_path), prefix_embedding="item-mean", k=5)
    off = SemanticsConfig(
        cache_dir=str(tmp_path),
        prefix_embedding="item-mean",
        k=5,
        exclude_same_user=False,
    )
    args = (data.item_features, data.item_ids, users, lengths, flat, offsets)
    sem_on = build_semantics(*args, on, encoder=TfidfSvdEncoder(16))
    sem_off = build_semantics(*args, off, encoder=TfidfSvdEncoder(16))
    assert sem_on.same_user_share() == 0.0
    # The leak of the public code: a prefix's nearest prefixes are its own
    # user's longer (or shorter) prefixes.
    assert sem_off.same_user_share() > 0.3
    assert sem_off.info["exclude_same_user"] is False


def test_cache_is_reused_and_chunks_resume(topics, tmp_path):
    _, _, split = topics
    data = split.data
    users, lengths, flat, offsets = _samples(split)
    args = (data.item_features, data.item_ids, users, lengths, flat, offsets)
    config = SemanticsConfig(cache_dir=str(tmp_path), chunk_size=50, k=3)

    first_enc = CountingEncoder()
    first = build_semantics(*args, config, encoder=first_enc)
    assert first_enc.encoded == data.n_items + len(users)

    # Same inputs: everything comes from the cache, nothing is encoded.
    again_enc = CountingEncoder()
    again = build_semantics(*args, config, encoder=again_enc)
    assert again_enc.encoded == 0
    np.testing.assert_array_equal(again.prefix_neighbours, first.prefix_neighbours)

    # A crash after some chunks: the finished chunk files are reused.
    folder = tmp_path / first.info["fingerprint"]
    (folder / "semantics.json").unlink()
    for path in sorted(folder.glob("prefixes-*.npy"))[2:]:
        path.unlink()
    resumed_enc = CountingEncoder()
    resumed_enc.fit(item_texts(data.item_features, list(data.item_ids)))
    build_semantics(*args, config, encoder=resumed_enc)
    assert resumed_enc.encoded == len(users) - 100  # items and 2 chunks reused


def test_semantics_round_trip(tmp_path):
    sem = Semantics(
        np.eye(3, dtype=np.float32),
        np.eye(3, dtype=np.float32),
        np.array([[1], [2], [0]]),
        np.array([[-1], [0], [1]]),
        np.array([0, 1, 1]),
        {"summary": "template"},
    )
    sem.save(tmp_path)
    back = Semantics.load(tmp_path)
    np.testing.assert_array_equal(back.prefix_neighbours, sem.prefix_neighbours)
    assert back.info == {"summary": "template"}
    assert back.same_user_share() == 0.5  # sample 2 -> sample 1, same user


def test_config_rejects_llm_with_item_mean():
    with pytest.raises(ConfigError):
        from_dict(SemanticsConfig, {"summary": "llm", "prefix_embedding": "item-mean"})


def test_llm_summaries_go_through_the_openai_backend(topics, tmp_path, monkeypatch):
    """LLM mode: every prefix gets one prompt; the outputs are cached."""
    import tamis.text.generate as generate

    prompts_seen = []

    class FakeBackend:
        model_id = "fake"

        def generate(self, prompts, params):
            prompts_seen.extend(prompts)
            return [f"likes topic {p.count('-')}" for p in prompts]

    monkeypatch.setattr(generate, "build_generator", lambda *a, **k: FakeBackend())
    _, _, split = topics
    data = split.data
    users, lengths, flat, offsets = _samples(split)
    config = SemanticsConfig(cache_dir=str(tmp_path), summary="llm", k=3)
    sem = build_semantics(
        data.item_features,
        data.item_ids,
        users,
        lengths,
        flat,
        offsets,
        config,
        encoder=TfidfSvdEncoder(8),
    )
    assert len(set(prompts_seen)) == len(prompts_seen) <= len(users)
    assert sem.info["summary_source"].startswith("LLM")
    assert (tmp_path / "generations.jsonl").is_file()
