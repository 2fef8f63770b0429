"""Ligand readers: SMILES/TSV/.ism, SDF and mol2, optionally gzipped, via RDKit.

A record RDKit cannot parse is logged with its file and record number and
skipped; the reader counts the skips, so one bad molecule never aborts a large
library.
"""

from __future__ import annotations

import gzip
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rdkit import Chem, RDLogger

__all__ = ["LigandRecord", "LigandReader", "read_ligands", "read_reference_ligand"]

log = logging.getLogger(__name__)

_SMILES_SUFFIXES = {".smi", ".ism", ".tsv", ".txt", ".csv", ".smiles"}


@dataclass
class LigandRecord:
    """One molecule of a library.

    Attributes:
        name: Identifier from the file (or ``<file>#<record>``).
        mol: The RDKit molecule (with a conformer when the file had 3D).
        smiles: Canonical isomeric SMILES (used to deduplicate).
    """

    name: str
    mol: Chem.Mol
    smiles: str


def _strip_gz(path: Path) -> tuple[str, bool]:
    if path.suffix == ".gz":
        return Path(path.stem).suffix.lower(), True
    return path.suffix.lower(), False


def _text(path: Path, gz: bool) -> io.TextIOBase:
    return (
        gzip.open(path, "rt", errors="replace") if gz else open(path, errors="replace")
    )


@dataclass
class LigandReader:
    """Iterate over the molecules of one file, counting the bad records.

    Attributes:
        path: The library file (.smi/.ism/.tsv/.csv, .sdf, .mol2, each may be .gz).
        smiles_column: Column of the SMILES in delimited text (None: guess per file:
            the first column that RDKit parses).
        name_column: Column of the identifier in delimited text (None: the other
            first column).
        n_read: Records parsed so far.
        n_skipped: Records skipped so far.
        lines: Read only these 1-based line numbers (delimited text only; a cheap
            way to subsample a large library before parsing).
    """

    path: Path
    smiles_column: int | None = None
    name_column: int | None = None
    n_read: int = 0
    n_skipped: int = 0
    skipped: list[str] = field(default_factory=list)
    lines: set[int] | None = None

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: ligand file not found")

    def __iter__(self) -> Iterator[LigandRecord]:
        suffix, gz = _strip_gz(self.path)
        RDLogger.DisableLog("rdApp.*")
        try:
            if suffix in _SMILES_SUFFIXES:
                yield from self._smiles(gz, suffix)
            elif suffix in (".sdf", ".sd", ".mol"):
                yield from self._sdf(gz)
            elif suffix == ".mol2":
                yield from self._mol2(gz)
            else:
                raise ValueError(
                    f"{self.path}: unknown ligand format {suffix!r}; expected "
                    ".smi, .ism, .tsv, .csv, .sdf or .mol2 (optionally .gz)"
                )
        finally:
            RDLogger.EnableLog("rdApp.*")
        if self.n_skipped:
            log.warning(
                "%s: %d of %d records could not be parsed and were skipped",
                self.path,
                self.n_skipped,
                self.n_read + self.n_skipped,
            )

    def _bad(self, where: str, why: str) -> None:
        self.n_skipped += 1
        if len(self.skipped) < 1000:
            self.skipped.append(where)
        log.debug("%s: skipped (%s)", where, why)

    def _emit(self, mol: Chem.Mol | None, name: str, where: str) -> LigandRecord | None:
        if mol is None or mol.GetNumAtoms() == 0:
            self._bad(where, "RDKit could not parse it")
            return None
        self.n_read += 1
        return LigandRecord(name, mol, Chem.MolToSmiles(mol))

    def _smiles(self, gz: bool, suffix: str) -> Iterator[LigandRecord]:
        delim = "," if suffix == ".csv" else None
        with _text(self.path, gz) as fh:
            for lineno, line in enumerate(fh, start=1):
                if self.lines is not None and lineno not in self.lines and lineno > 1:
                    continue
                fields = [f.strip() for f in line.strip().split(delim)]
                fields = [f for f in fields if f]
                if not fields or fields[0].startswith("#"):
                    continue
                where = f"{self.path}:{lineno}"
                col = self.smiles_column
                if col is None:
                    col = self._guess_column(fields)
                    if col is None and lineno == 1:
                        continue  # a header line
                if col is None or col >= len(fields):
                    self._bad(where, f"no SMILES column in {len(fields)} fields")
                    continue
                name_col = self.name_column
                if name_col is None:
                    name_col = 1 if col == 0 else 0
                name = fields[name_col] if name_col < len(fields) else where
                rec = self._emit(Chem.MolFromSmiles(fields[col]), name, where)
                if rec is not None:
                    yield rec

    @staticmethod
    def _guess_column(fields: list[str]) -> int | None:
        for i, f in enumerate(fields[:3]):
            if any(c in f for c in "=()[]#@") or (f.isalpha() and len(f) < 4):
                if Chem.MolFromSmiles(f) is not None:
                    return i
        for i, f in enumerate(fields[:3]):
            if not f.isdigit() and Chem.MolFromSmiles(f) is not None:
                return i
        return None

    def _sdf(self, gz: bool) -> Iterator[LigandRecord]:
        fh = gzip.open(self.path, "rb") if gz else open(self.path, "rb")
        with fh:
            supplier = Chem.ForwardSDMolSupplier(fh, removeHs=True)
            for idx, mol in enumerate(supplier, start=1):
                where = f"{self.path}#{idx}"
                name = mol.GetProp("_Name") if mol is not None else ""
                rec = self._emit(mol, name or where, where)
                if rec is not None:
                    yield rec

    def _mol2(self, gz: bool) -> Iterator[LigandRecord]:
        block: list[str] = []
        idx = 0
        with _text(self.path, gz) as fh:
            for line in [*fh, "@<TRIPOS>MOLECULE\n"]:
                if line.startswith("@<TRIPOS>MOLECULE") and block:
                    idx += 1
                    where = f"{self.path}#{idx}"
                    text = "".join(block)
                    mol = Chem.MolFromMol2Block(text, removeHs=True)
                    name = block[1].strip() if len(block) > 1 else where
                    rec = self._emit(mol, name or where, where)
                    if rec is not None:
                        yield rec
                    block = []
                if line.startswith("@<TRIPOS>MOLECULE") or block:
                    block.append(line)


def read_ligands(
    path: str | Path, unique: bool = False, lines: set[int] | None = None
) -> tuple[list[LigandRecord], int]:
    """Read a whole ligand file.

    Args:
        path: Ligand file.
        unique: Keep the first record of each identifier and canonical SMILES
            only (DUD-E files list several protonation states of one compound).
        lines: Parse only these 1-based line numbers (delimited text only).

    Returns:
        ``(records, n_skipped)``.
    """
    reader = LigandReader(Path(path), lines=lines)
    records = list(reader)
    if unique:
        # A compound is one identifier and one canonical SMILES: DUD-E lists
        # protonation states as extra rows under the same identifier.
        seen: set[str] = set()
        kept = []
        for r in records:
            if r.smiles in seen or r.name in seen:
                continue
            seen.update((r.smiles, r.name))
            kept.append(r)
        records = kept
    return records, reader.n_skipped


def read_reference_ligand(path: str | Path) -> Chem.Mol:
    """Read the first molecule of a crystal-ligand file, keeping its coordinates.

    Falls back to a non-sanitised read (coordinates only matter for pockets) when
    RDKit rejects the chemistry.

    Raises:
        ValueError: If no coordinates can be read; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: reference ligand file not found")
    suffix, gz = _strip_gz(path)
    RDLogger.DisableLog("rdApp.*")
    try:
        mol = None
        for sanitize in (True, False):
            with _text(path, gz) as fh:
                text = fh.read()
            if suffix in (".sdf", ".mol", ".sd"):
                mol = Chem.MolFromMolBlock(
                    text.split("$$$$")[0], sanitize=sanitize, removeHs=sanitize
                )
            elif suffix == ".mol2":
                mol = Chem.MolFromMol2Block(text, sanitize=sanitize, removeHs=sanitize)
            elif suffix == ".pdb":
                mol = Chem.MolFromPDBBlock(text, sanitize=sanitize, removeHs=sanitize)
            else:
                raise ValueError(
                    f"{path}: reference ligand must be .sdf, .mol2 or .pdb, "
                    f"got {suffix!r}"
                )
            if mol is not None:
                break
    finally:
        RDLogger.EnableLog("rdApp.*")
    if mol is None or mol.GetNumConformers() == 0:
        raise ValueError(f"{path}: no ligand coordinates could be read")
    return mol
