"""Screening: encode a pocket once, encode a library in chunks, score and rank."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rdkit import Chem

from tamis.core.io import atomic_write_text
from tamis.core.progress import progress
from tamis.screening.data.ligands import (
    LigandReader,
    LigandRecord,
    read_reference_ligand,
)
from tamis.screening.data.pdb import read_pdb
from tamis.screening.data.pockets import Box, Pocket, extract_pocket
from tamis.screening.encoders.ligand import (
    LigandBatch,
    PackedGraphs,
    collate_graphs,
    featurize,
)
from tamis.screening.metrics import rank_order
from tamis.screening.model import S2Drug, collate_pockets

__all__ = ["Screener", "pocket_from_files", "chunks", "write_ranking", "Ranking"]

log = logging.getLogger(__name__)


def chunks(records: Iterable[LigandRecord], size: int) -> Iterator[list[LigandRecord]]:
    """Consecutive lists of at most ``size`` records (streams large libraries)."""
    buf: list[LigandRecord] = []
    for rec in records:
        buf.append(rec)
        if len(buf) == size:
            yield buf
            buf = []
    if buf:
        yield buf


def pocket_from_files(
    receptor: str | Path,
    ligand_ref: str | Path | None = None,
    box: Box | None = None,
    cutoff: float = 6.0,
    full_sequence: str | None = None,
) -> Pocket:
    """A pocket from a receptor PDB and a reference ligand (or a box)."""
    structure = read_pdb(receptor)
    coords = None
    if ligand_ref is not None:
        ref = read_reference_ligand(ligand_ref)
        heavy = np.array([a.GetAtomicNum() > 1 for a in ref.GetAtoms()])
        coords = ref.GetConformer().GetPositions()[heavy]
    return extract_pocket(
        structure,
        Path(receptor).parent.name or "pocket",
        coords,
        box,
        cutoff,
        cutoff,
        full_sequence,
    )


@dataclass
class Ranking:
    """A ranked library: names, SMILES and scores, best first."""

    names: list[str]
    smiles: list[str]
    scores: np.ndarray


def write_ranking(ranking: Ranking, out: str | Path) -> Path:
    """Write ``rank,name,smiles,score`` CSV atomically."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["rank", "name", "smiles", "score"])
    for i, (n, s, v) in enumerate(
        zip(ranking.names, ranking.smiles, ranking.scores, strict=True), start=1
    ):
        writer.writerow([i, n, s, f"{v:.6f}"])
    return atomic_write_text(out, buf.getvalue())


class Screener:
    """Scores ligands against pockets with a trained model.

    Args:
        model: A trained :class:`S2Drug` (eval mode is set here).
        batch_size: Molecules per encoding chunk.
        use_3d: Use conformers present in the library files.
        device: Torch device of the model.
        prefetch: Featurise the next chunk in a worker thread while the
            network encodes the current one.
    """

    def __init__(
        self,
        model: S2Drug,
        batch_size: int = 512,
        use_3d: bool = False,
        device: str = "cpu",
        prefetch: bool = True,
    ) -> None:
        self.model = model.eval()
        self.batch_size, self.use_3d, self.device = batch_size, use_3d, device
        self.prefetch = prefetch

    @torch.inference_mode()
    def encode_pockets(self, pockets: list[Pocket]) -> np.ndarray:
        """(P, E) pocket embeddings."""
        batch = collate_pockets(pockets, self.model.shape.max_seq_len)
        return self.model.encode_pockets(batch.to(self.device)).cpu().numpy()

    @torch.inference_mode()
    def encode_mols(self, mols: list[Chem.Mol]) -> np.ndarray:
        """(N, E) embeddings of a list of molecules (one chunk)."""
        graphs = [featurize(m, self.use_3d) for m in mols]
        lig = collate_graphs(graphs).to(self.device)
        return self.model.encode_ligands(lig).cpu().numpy()

    @torch.inference_mode()
    def encode_packed(self, graphs: PackedGraphs) -> np.ndarray:
        """(N, E) embeddings of cached graphs: only the network runs."""
        out = [
            self.model.encode_ligands(
                graphs.batch(i, i + self.batch_size).to(self.device)
            )
            .cpu()
            .numpy()
            for i in range(0, len(graphs), self.batch_size)
        ]
        dim = self.model.shape.embed_dim
        return np.concatenate(out) if out else np.zeros((0, dim), np.float32)

    def encode_library(
        self, records: Iterable[LigandRecord], total: int | None = None
    ) -> tuple[np.ndarray, list[str], list[str]]:
        """Embeddings, names and SMILES of a library, chunk by chunk.

        With ``prefetch`` on, one worker thread reads (parses) and featurises
        the next chunk while the network encodes the current one; torch
        releases the GIL inside its kernels, so the two overlap.
        """
        embs, names, smiles = [], [], []
        n_chunks = None if total is None else -(-total // self.batch_size)
        for chunk, batch in progress(
            self._featurised_chunks(records), desc="encode", total=n_chunks
        ):
            embs.append(self._encode_batch(batch))
            names += [r.name for r in chunk]
            smiles += [r.smiles for r in chunk]
        dim = self.model.shape.embed_dim
        emb = np.concatenate(embs) if embs else np.zeros((0, dim), np.float32)
        return emb, names, smiles

    @torch.inference_mode()
    def _encode_batch(self, batch: LigandBatch) -> np.ndarray:
        return self.model.encode_ligands(batch.to(self.device)).cpu().numpy()

    def _featurised_chunks(
        self, records: Iterable[LigandRecord]
    ) -> Iterator[tuple[list[LigandRecord], LigandBatch]]:
        """Chunks of records with their collated graphs, one chunk ahead."""
        source = chunks(records, self.batch_size)

        def prepare() -> tuple[list[LigandRecord], LigandBatch] | None:
            chunk = next(source, None)
            if chunk is None:
                return None
            graphs = [featurize(r.mol, self.use_3d) for r in chunk]
            return chunk, collate_graphs(graphs)

        if not self.prefetch:
            while (ready := prepare()) is not None:
                yield ready
            return
        with ThreadPoolExecutor(max_workers=1) as pool:
            future = pool.submit(prepare)
            while (ready := future.result()) is not None:
                future = pool.submit(prepare)  # the next chunk, while this one encodes
                yield ready

    def screen_file(
        self, pocket: Pocket, library: str | Path, seed: int = 0
    ) -> tuple[Ranking, int]:
        """Rank a library file against one pocket.

        Returns:
            ``(ranking, n_skipped)``; ties are broken by ``seed``.
        """
        p_emb = self.encode_pockets([pocket])[0]  # (E,) encoded once
        reader = LigandReader(Path(library))
        emb, names, smiles = self.encode_library(reader)
        if not names:
            raise ValueError(f"{library}: no molecule could be read")
        scores = emb @ p_emb
        order = rank_order(scores, seed)
        ranking = Ranking(
            [names[i] for i in order], [smiles[i] for i in order], scores[order]
        )
        log.info("screened %d molecules (%d skipped)", len(names), reader.n_skipped)
        return ranking, reader.n_skipped
