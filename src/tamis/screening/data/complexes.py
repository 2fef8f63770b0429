"""Protein-ligand complexes (PDBbind-style folders) and stage-2 training items."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rdkit import Chem

from tamis.screening.data.dude import read_dude_target
from tamis.screening.data.ligands import read_reference_ligand
from tamis.screening.data.pdb import read_pdb
from tamis.screening.data.pockets import Pocket, extract_pocket

__all__ = [
    "ComplexFiles",
    "find_complexes",
    "PocketItem",
    "load_complex",
    "load_target_item",
]

log = logging.getLogger(__name__)
_LIGAND_RE = re.compile(r"^(?P<id>.+?)_ligand\.(sdf|mol2)$", re.IGNORECASE)


@dataclass(frozen=True)
class ComplexFiles:
    """Paths of one complex."""

    name: str
    protein: Path
    ligand: Path


@dataclass
class PocketItem:
    """A pocket with the ligands known to bind it (stage-2 positives).

    Attributes:
        pocket: The pocket and its labelled sequence.
        ligands: RDKit molecules binding it (the crystal ligand first if usable).
        smiles: Their canonical SMILES (keys for duplicate masking).
    """

    pocket: Pocket
    ligands: list[Chem.Mol] = field(default_factory=list)
    smiles: list[str] = field(default_factory=list)


def find_complexes(root: str | Path) -> list[ComplexFiles]:
    """Find ``<id>_ligand.{sdf,mol2}`` files with a ``<id>_*.pdb`` protein nearby.

    The protein file is, by preference, ``<id>_protein*.pdb``, then
    ``<id>_pocket.pdb``, then any ``<id>*.pdb`` in the same folder. SDF wins
    over mol2 when both exist.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: complex folder not found")
    found: dict[tuple[Path, str], ComplexFiles] = {}
    for lig in sorted(root.rglob("*_ligand.*"), key=lambda p: p.suffix != ".sdf"):
        m = _LIGAND_RE.match(lig.name)
        if not m or (lig.parent, m["id"]) in found:
            continue
        cid = m["id"]
        for pattern in (f"{cid}_protein*.pdb", f"{cid}_pocket.pdb", f"{cid}*.pdb"):
            hits = sorted(lig.parent.glob(pattern))
            if hits:
                found[(lig.parent, cid)] = ComplexFiles(cid, hits[0], lig)
                break
    return list(found.values())


def _sanitized(mol: Chem.Mol) -> Chem.Mol | None:
    try:
        copy = Chem.Mol(mol)
        Chem.SanitizeMol(copy)
        return Chem.RemoveHs(copy)
    except Exception:  # RDKit raises several exception types for bad chemistry
        return None


def load_complex(
    files: ComplexFiles, cutoff: float = 6.0, label_cutoff: float = 6.0
) -> PocketItem:
    """Pocket and crystal ligand of one complex.

    A crystal ligand RDKit cannot sanitise still defines the pocket (its
    coordinates are read), but is not used as a positive; this is logged.
    """
    structure = read_pdb(files.protein)
    ref = read_reference_ligand(files.ligand)
    coords = ref.GetConformer().GetPositions()
    heavy = np.array([a.GetAtomicNum() > 1 for a in ref.GetAtoms()])
    pocket = extract_pocket(
        structure, files.name, coords[heavy], cutoff=cutoff, label_cutoff=label_cutoff
    )
    item = PocketItem(pocket)
    mol = _sanitized(ref)
    if mol is None:
        log.warning(
            "%s: ligand fails RDKit sanitisation; pocket kept, ligand skipped",
            files.ligand,
        )
    else:
        item.ligands.append(mol)
        item.smiles.append(Chem.MolToSmiles(mol))
    return item


def load_target_item(
    folder: str | Path,
    max_actives: int,
    seed: int = 0,
    cutoff: float = 6.0,
    label_cutoff: float = 6.0,
) -> PocketItem:
    """A DUD-E style target as a stage-2 item: crystal pocket plus actives."""
    folder = Path(folder)
    target = read_dude_target(folder, seed=seed, with_decoys=False)
    if target.receptor is None or target.crystal_ligand is None:
        raise FileNotFoundError(f"{folder}: needs a receptor PDB and a crystal ligand")
    item = load_complex(
        ComplexFiles(target.name, target.receptor, target.crystal_ligand),
        cutoff,
        label_cutoff,
    )
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(target.actives))[:max_actives]
    for i in order:
        rec = target.actives[i]
        if rec.smiles not in item.smiles:
            item.ligands.append(rec.mol)
            item.smiles.append(rec.smiles)
    return item
