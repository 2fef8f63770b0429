"""Activity tables: ligand, protein sequence and affinity (Davis, KIBA, ChEMBL).

Two layouts are read:

* a DeepDTA-style folder with ``ligands.tsv`` (``ligand_id, smiles``),
  ``proteins.tsv`` (``protein_id, sequence``) and ``affinities.tsv``
  (``ligand_id, protein_id, <value>``); a value column named ``kd_nM``/``ki_nM``/
  ``ic50_nM`` is converted to the p-scale (``9 - log10(nM)``);
* one delimited file with SMILES, sequence and affinity or label columns
  (ConPLex's ``SMILES,Target Sequence,Label`` and ChEMBL exports with
  ``smiles`` and ``pIC50``; the protein sequence can then be given separately).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["ActivityTable", "read_activity"]

_SMILES_COLS = ("smiles", "SMILES", "canonical_smiles", "Ligand SMILES")
_SEQ_COLS = ("Target Sequence", "sequence", "Sequence", "target_sequence")
_VALUE_COLS = ("Label", "label", "pIC50", "pKd", "pKi", "affinity", "kiba_score")
_NM_COLS = ("kd_nM", "ki_nM", "ic50_nM", "IC50")


@dataclass
class ActivityTable:
    """Ligand-protein measurements.

    Attributes:
        smiles: (M,) ligand SMILES per measurement.
        ligand_ids: (M,) ligand identifiers.
        protein_ids: (M,) protein identifiers.
        sequences: Protein id -> sequence.
        affinity: (M,) affinity on a larger-is-stronger scale (pKd, KIBA score or
            a 0/1 label).
        source: Where the table came from.
    """

    smiles: list[str]
    ligand_ids: list[str]
    protein_ids: list[str]
    sequences: dict[str, str]
    affinity: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.smiles)

    def subset(self, keep: np.ndarray) -> ActivityTable:
        """Rows where ``keep`` (bool mask or index array) selects."""
        idx = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else keep
        return ActivityTable(
            [self.smiles[i] for i in idx],
            [self.ligand_ids[i] for i in idx],
            [self.protein_ids[i] for i in idx],
            self.sequences,
            self.affinity[idx],
            self.source,
        )


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    text = path.read_text(errors="replace").splitlines()
    if not text:
        raise ValueError(f"{path}: empty file")
    delim = "\t" if "\t" in text[0] else ","
    rows = list(csv.reader(text, delimiter=delim))
    return [h.strip() for h in rows[0]], rows[1:]


def _column(header: list[str], names: tuple[str, ...], path: Path) -> int | None:
    for name in names:
        if name in header:
            return header.index(name)
    return None


def _to_p(value: float) -> float:
    return 9.0 - math.log10(max(value, 1e-3))


def _read_folder(folder: Path) -> ActivityTable:
    for name in ("ligands.tsv", "proteins.tsv", "affinities.tsv"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder}: {name} missing (DeepDTA layout)")
    _, lig_rows = _rows(folder / "ligands.tsv")
    _, prot_rows = _rows(folder / "proteins.tsv")
    ligands = {r[0]: r[1] for r in lig_rows if len(r) >= 2}
    sequences = {r[0]: r[1].strip().upper() for r in prot_rows if len(r) >= 2}
    header, rows = _rows(folder / "affinities.tsv")
    convert = header[2] in _NM_COLS if len(header) > 2 else False
    smiles, lig_ids, prot_ids, values = [], [], [], []
    for lineno, row in enumerate(rows, start=2):
        try:
            lig, prot, raw = row[0], row[1], float(row[2])
        except (IndexError, ValueError) as err:
            raise ValueError(
                f"{folder / 'affinities.tsv'}:{lineno}: expected "
                "ligand_id, protein_id, number"
            ) from err
        if lig not in ligands or prot not in sequences:
            raise ValueError(
                f"{folder / 'affinities.tsv'}:{lineno}: unknown ligand {lig!r} "
                f"or protein {prot!r}"
            )
        smiles.append(ligands[lig])
        lig_ids.append(lig)
        prot_ids.append(prot)
        values.append(_to_p(raw) if convert else raw)
    return ActivityTable(
        smiles, lig_ids, prot_ids, sequences, np.asarray(values), str(folder)
    )


def _read_file(path: Path, sequence: str | None, protein_id: str) -> ActivityTable:
    header, rows = _rows(path)
    s_col = _column(header, _SMILES_COLS, path)
    q_col = _column(header, _SEQ_COLS, path)
    v_col = _column(header, _VALUE_COLS, path)
    nm_col = _column(header, _NM_COLS, path)
    if s_col is None or (v_col is None and nm_col is None):
        raise ValueError(
            f"{path}: expected a SMILES column ({', '.join(_SMILES_COLS)}) and an "
            f"affinity column ({', '.join(_VALUE_COLS + _NM_COLS)}); got {header}"
        )
    if q_col is None and sequence is None:
        raise ValueError(f"{path}: no sequence column; pass the protein sequence")
    smiles, lig_ids, prot_ids, values = [], [], [], []
    sequences: dict[str, str] = {}
    for lineno, row in enumerate(rows, start=2):
        try:
            v = float(row[v_col]) if v_col is not None else _to_p(float(row[nm_col]))
        except (IndexError, ValueError):
            continue  # a row without a number is not a measurement
        seq = row[q_col].strip().upper() if q_col is not None else sequence
        pid = protein_id if q_col is None else f"seq{len(sequences)}"
        pid = next((k for k, s in sequences.items() if s == seq), pid)
        sequences[pid] = seq
        smiles.append(row[s_col])
        lig_ids.append(row[s_col])
        prot_ids.append(pid)
        values.append(v)
        del lineno
    return ActivityTable(
        smiles, lig_ids, prot_ids, sequences, np.asarray(values), str(path)
    )


def read_activity(
    path: str | Path, sequence: str | None = None, protein_id: str = "target"
) -> ActivityTable:
    """Read an activity table (DeepDTA folder or one delimited file).

    Args:
        path: Folder or file.
        sequence: Protein sequence for single-target files without a sequence
            column (ChEMBL exports).
        protein_id: Identifier of that protein.

    Returns:
        The :class:`ActivityTable`.
    """
    path = Path(path)
    if path.is_dir():
        return _read_folder(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: activity table not found")
    return _read_file(path, sequence, protein_id)
