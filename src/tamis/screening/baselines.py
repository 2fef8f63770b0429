"""Ligand-similarity baseline: ECFP4 max-Tanimoto to reference ligands.

On DUD-E this 2D baseline is strong (analogue bias of the actives); a learned
model that cannot beat it is not informative.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rdkit import Chem, DataStructs
from rdkit.Chem import rdFingerprintGenerator

__all__ = ["ecfp4", "max_tanimoto"]

_GEN = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)


def ecfp4(mol: Chem.Mol) -> DataStructs.ExplicitBitVect:
    """2048-bit Morgan fingerprint of radius 2 (ECFP4)."""
    return _GEN.GetFingerprint(mol)


def max_tanimoto(
    library: Sequence[Chem.Mol], references: Sequence[Chem.Mol]
) -> np.ndarray:
    """(N,) highest ECFP4 Tanimoto similarity of each molecule to any reference."""
    if not references:
        raise ValueError("max_tanimoto: at least one reference ligand is needed")
    refs = [ecfp4(m) for m in references]
    out = np.zeros(len(library))
    for i, mol in enumerate(library):
        out[i] = max(DataStructs.BulkTanimotoSimilarity(ecfp4(mol), refs))
    return out
