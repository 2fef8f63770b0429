"""Pockets, binding-site labels and residue-to-sequence mapping.

A pocket is the set of residues with any heavy atom within ``cutoff`` (6 A, as
in DrugCLIP) of a reference ligand, or with any atom inside a docking box.
Binding-site labels mark, on the chain's full sequence, the residues within
``label_cutoff`` of the ligand. Structure residues are placed on the full
sequence by global alignment, so broken numbering, gaps and insertion codes
do not matter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tamis.screening.data.align import map_positions
from tamis.screening.data.pdb import Residue, Structure

__all__ = ["Box", "Pocket", "read_vina_box", "extract_pocket", "pocket_residue_mask"]


@dataclass(frozen=True)
class Box:
    """An axis-aligned docking box: centre and edge lengths in Angstrom."""

    center: tuple[float, float, float]
    size: tuple[float, float, float]

    def contains(self, xyz: np.ndarray) -> np.ndarray:
        """(N,) whether each of the (N, 3) points lies inside the box."""
        half = np.asarray(self.size) / 2
        return (np.abs(np.asarray(xyz) - np.asarray(self.center)) <= half).all(axis=1)


def read_vina_box(path: str | Path) -> Box:
    """Read ``center_x/y/z`` and ``size_x/y/z`` from an AutoDock Vina config.

    Raises:
        ValueError: If a key is missing; the message names the file and key.
    """
    path = Path(path)
    values: dict[str, float] = {}
    for line in path.read_text().splitlines():
        m = re.match(r"\s*(center|size)_([xyz])\s*=\s*([-+0-9.eE]+)", line)
        if m:
            values[f"{m[1]}_{m[2]}"] = float(m[3])
    keys = [f"{a}_{b}" for a in ("center", "size") for b in "xyz"]
    for k in keys:
        if k not in values:
            raise ValueError(f"{path}: key {k} missing (expected a Vina config)")
    c = tuple(values[f"center_{a}"] for a in "xyz")
    s = tuple(values[f"size_{a}"] for a in "xyz")
    return Box(c, s)  # type: ignore[arg-type]


@dataclass
class Pocket:
    """A binding pocket and its chain's sequence with site labels.

    Attributes:
        name: Identifier (target or complex id).
        sequence: Full sequence of the pocket's main chain.
        residue_aa: One-letter codes of the R pocket residues.
        coords: (R, 3) residue centres (alpha carbons).
        seq_positions: (R,) position of each pocket residue in ``sequence`` (-1 for
            residues of other chains or residues that do not align).
        site_labels: (L,) 1.0 at binding-site positions of ``sequence``, else 0.0.
    """

    name: str
    sequence: str
    residue_aa: str
    coords: np.ndarray
    seq_positions: np.ndarray
    site_labels: np.ndarray

    def __post_init__(self) -> None:
        r = len(self.residue_aa)
        if self.coords.shape != (r, 3) or self.seq_positions.shape != (r,):
            raise ValueError(f"pocket {self.name}: inconsistent residue arrays")
        if self.site_labels.shape != (len(self.sequence),):
            raise ValueError(f"pocket {self.name}: site labels do not match sequence")


def _min_distances(residues: list[Residue], points: np.ndarray) -> np.ndarray:
    """(R,) smallest distance from any atom of each residue to any point."""
    out = np.empty(len(residues))
    for i, res in enumerate(residues):
        diff = res.coords[:, None, :] - points[None, :, :]  # (A, P, 3)
        out[i] = np.sqrt((diff**2).sum(-1)).min()
    return out


def pocket_residue_mask(
    structure: Structure,
    ligand_coords: np.ndarray | None = None,
    box: Box | None = None,
    cutoff: float = 6.0,
) -> np.ndarray:
    """(R,) boolean mask of the structure's residues that form the pocket.

    Args:
        structure: The receptor.
        ligand_coords: (P, 3) heavy-atom coordinates of the reference ligand.
        box: A docking box, used when no ligand is given.
        cutoff: Distance cut-off in Angstrom.
    """
    if ligand_coords is not None:
        return _min_distances(structure.residues, np.asarray(ligand_coords)) <= cutoff
    if box is not None:
        return np.array([box.contains(r.coords).any() for r in structure.residues])
    raise ValueError("a pocket needs a reference ligand or a box")


def extract_pocket(
    structure: Structure,
    name: str,
    ligand_coords: np.ndarray | None = None,
    box: Box | None = None,
    cutoff: float = 6.0,
    label_cutoff: float = 6.0,
    full_sequence: str | None = None,
    max_residues: int = 96,
) -> Pocket:
    """Cut a pocket out of a receptor and label the binding site on its sequence.

    Args:
        structure: The receptor.
        name: Pocket identifier.
        ligand_coords: (P, 3) reference-ligand heavy-atom coordinates.
        box: Docking box (used if ``ligand_coords`` is None; labels are then the
            box residues).
        cutoff: Pocket cut-off in Angstrom (6 A).
        label_cutoff: Binding-site label cut-off in Angstrom.
        full_sequence: The main chain's full (e.g. UniProt/SEQRES) sequence; the
            observed residues are aligned onto it. Default: the observed residues.
        max_residues: Keep at most this many pocket residues (closest first).

    Returns:
        The :class:`Pocket`.

    Raises:
        ValueError: If no residue lies within the cut-off.
    """
    mask = pocket_residue_mask(structure, ligand_coords, box, cutoff)
    if not mask.any():
        raise ValueError(
            f"{structure.path}: no residue within {cutoff} A of the reference "
            "ligand (or inside the box); is it the right receptor?"
        )
    idx = np.flatnonzero(mask)
    if ligand_coords is not None:
        dist = _min_distances([structure.residues[i] for i in idx], ligand_coords)
        idx = idx[np.argsort(dist, kind="stable")[:max_residues]]
        idx.sort()
    else:
        idx = idx[:max_residues]
    residues = [structure.residues[i] for i in idx]

    # The main chain is the one contributing most pocket residues.
    chains = [r.chain for r in residues]
    main = max(set(chains), key=lambda c: (chains.count(c), -structure.chains.index(c)))
    chain_res = structure.chain_residues(main)
    observed = "".join(r.aa for r in chain_res)
    sequence = full_sequence.upper() if full_sequence else observed
    positions = (
        map_positions(observed, sequence) if full_sequence else np.arange(len(observed))
    )
    where = {id(r): int(p) for r, p in zip(chain_res, positions, strict=True)}
    seq_positions = np.array([where.get(id(r), -1) for r in residues], dtype=np.int64)

    # Binding-site labels on the main chain's sequence.
    labels = np.zeros(len(sequence), dtype=np.float32)
    if ligand_coords is not None:
        near = _min_distances(chain_res, ligand_coords) <= label_cutoff
    else:
        near = np.array([box.contains(r.coords).any() for r in chain_res])
    mapped = positions[near]
    labels[mapped[mapped >= 0]] = 1.0
    return Pocket(
        name,
        sequence,
        "".join(r.aa for r in residues),
        np.stack([r.center for r in residues]).astype(np.float32),
        seq_positions,
        labels,
    )
