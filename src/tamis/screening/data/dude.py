"""DUD-E style target folders: receptor, crystal ligand, actives and decoys.

A folder holds ``receptor*.pdb``, ``crystal_ligand.{mol2,sdf}`` and actives and
decoys in any of ``actives_final.ism``, ``actives*.tsv``, ``*_actives.tsv``,
``actives_final.sdf.gz`` or ``actives_final.mol2.gz`` (the same for decoys),
read in that order of preference. Compounds are deduplicated by canonical
SMILES: DUD-E's 3D files list several protonation states of one compound.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tamis.screening.data.ligands import LigandRecord, read_ligands

__all__ = ["DudeTarget", "read_dude_target", "find_library_file"]

log = logging.getLogger(__name__)

_PATTERNS = (
    "{kind}_final.ism",
    "{kind}.tsv",
    "*_{kind}.tsv",
    "{kind}_final.smi",
    "{kind}_final.sdf.gz",
    "{kind}_final.sdf",
    "{kind}_final.mol2.gz",
    "{kind}_final.mol2",
)


@dataclass
class DudeTarget:
    """One DUD-E style target.

    Attributes:
        name: Folder name.
        receptor: Receptor PDB (None for ligand-only targets).
        crystal_ligand: Reference ligand file (None if absent).
        actives: Unique active compounds.
        decoys: Unique decoy compounds (after optional subsampling).
        n_skipped: Records RDKit could not parse.
    """

    name: str
    receptor: Path | None
    crystal_ligand: Path | None
    actives: list[LigandRecord]
    decoys: list[LigandRecord]
    n_skipped: int = 0

    @property
    def labels(self) -> np.ndarray:
        """(N,) 1 for actives then 0 for decoys."""
        return np.r_[np.ones(len(self.actives)), np.zeros(len(self.decoys))]

    @property
    def library(self) -> list[LigandRecord]:
        """Actives followed by decoys (rank with tie-breaking, not by order)."""
        return [*self.actives, *self.decoys]


def find_library_file(folder: Path, kind: str) -> Path | None:
    """The preferred ``actives``/``decoys`` file of a target folder, or None."""
    for pattern in _PATTERNS:
        hits = sorted(folder.glob(pattern.format(kind=kind)))
        if hits:
            return hits[0]
    return None


def _line_sample(path: Path, max_decoys: int | None, seed: int) -> set[int] | None:
    """Line numbers to parse when subsampling a line-based library (None: all).

    Twice the requested count is drawn so that duplicates removed later still
    leave enough molecules; the final subsample is drawn after deduplication.
    """
    if max_decoys is None or path.suffix not in (".ism", ".tsv", ".smi"):
        return None
    with open(path, "rb") as fh:
        n_lines = sum(1 for _ in fh)
    if n_lines <= 2 * max_decoys:
        return None
    picks = np.random.default_rng(seed).choice(n_lines, 2 * max_decoys, replace=False)
    return {int(i) + 1 for i in picks}


def _first(folder: Path, patterns: tuple[str, ...]) -> Path | None:
    for pattern in patterns:
        hits = sorted(folder.glob(pattern))
        if hits:
            return hits[0]
    return None


def read_dude_target(
    folder: str | Path,
    max_decoys: int | None = None,
    seed: int = 0,
    with_decoys: bool = True,
) -> DudeTarget:
    """Read a DUD-E style target folder.

    Args:
        folder: The target folder.
        max_decoys: Keep a random subset of at most this many unique decoys.
        seed: Seed of the decoy subsample.
        with_decoys: Read the decoys (False: actives only, faster).

    Returns:
        The :class:`DudeTarget`.

    Raises:
        FileNotFoundError: If the folder has no actives or no decoys file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: target folder not found")
    kinds = ("actives", "decoys") if with_decoys else ("actives",)
    files = {k: find_library_file(folder, k) for k in kinds}
    for kind, path in files.items():
        if path is None:
            raise FileNotFoundError(
                f"{folder}: no {kind} file (expected e.g. {kind}_final.ism, "
                f"{kind}.tsv or {kind}_final.mol2.gz)"
            )
    actives, bad_a = read_ligands(files["actives"], unique=True)
    decoys, bad_d = [], 0
    if with_decoys:
        decoys, bad_d = read_ligands(
            files["decoys"],
            unique=True,
            lines=_line_sample(files["decoys"], max_decoys, seed),
        )
    active_smiles = {r.smiles for r in actives}
    decoys = [d for d in decoys if d.smiles not in active_smiles]
    if max_decoys is not None and len(decoys) > max_decoys:
        keep = np.sort(
            np.random.default_rng(seed).permutation(len(decoys))[:max_decoys]
        )
        decoys = [decoys[i] for i in keep]
    receptor = _first(folder, ("receptor.pdb", "receptor*.pdb", "*.pdb"))
    crystal = _first(folder, ("crystal_ligand.mol2", "crystal_ligand.sdf", "crystal*"))
    log.info(
        "%s: %d actives, %d decoys, receptor %s",
        folder.name,
        len(actives),
        len(decoys),
        receptor.name if receptor else "none",
    )
    return DudeTarget(folder.name, receptor, crystal, actives, decoys, bad_a + bad_d)
