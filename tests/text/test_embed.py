"""Sentence encoders: the packaged MiniLM and the TF-IDF + SVD fallback."""

from __future__ import annotations

import numpy as np
import pytest

from tamis.text.embed import (
    SentenceEncoder,
    TfidfSvdEncoder,
    l2_normalise,
    resolve_encoder_dir,
)
from tamis.text.models import ModelNotFoundError


def test_l2_normalise_rows_and_zero_rows():
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    out = l2_normalise(x)
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])


def test_resolve_encoder_dir_rejects_non_directories(tmp_path):
    with pytest.raises(ModelNotFoundError, match="not a local directory"):
        resolve_encoder_dir(tmp_path / "absent")
    with pytest.raises(ModelNotFoundError, match="sentence-transformers"):
        resolve_encoder_dir(tmp_path)


def test_tfidf_encoder_puts_same_topic_texts_together():
    texts = [
        "red apple fruit sweet",
        "green apple fruit sour",
        "steel hammer tool heavy",
        "steel wrench tool heavy",
    ]
    enc = TfidfSvdEncoder(dim=3, seed=0)
    v = enc.encode(texts)
    assert v.shape == (4, 3)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sims = v @ v.T
    assert sims[0, 1] > sims[0, 2] and sims[2, 3] > sims[2, 0]
    # Later calls project into the same fitted space.
    again = enc.encode(["apple fruit"])
    assert (again @ v.T)[0, :2].min() > (again @ v.T)[0, 2:].max()


def test_packaged_minilm_embeds_paraphrases_closer():
    enc = SentenceEncoder(device="cpu")
    v = enc.encode(
        [
            "A cat sits on the mat.",
            "A kitten is sitting on a rug.",
            "Quarterly tax filing deadlines.",
        ]
    )
    assert v.shape == (3, 384) and enc.dim == 384
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2
    assert enc.encode([]).shape == (0, 384)
