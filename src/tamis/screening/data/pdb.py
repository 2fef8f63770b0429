"""A small PDB reader: protein residues, hetero groups and chain sequences.

Only the fixed-column ``ATOM``/``HETATM`` records are read. Files without the
element column (columns 77-78, absent in some DUD-E receptors such as pde5a)
get the element from the atom name; ions and waters are kept apart from the
protein residues. Alternate locations other than the first are dropped.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "Residue",
    "Structure",
    "read_pdb",
    "THREE_TO_ONE",
    "element_from_name",
]

#: Standard amino acids plus common modified residues mapped to their parent.
THREE_TO_ONE = {
    "ALA": "A", "ARG": "R", "ASN": "N", "ASP": "D", "CYS": "C", "GLN": "Q",
    "GLU": "E", "GLY": "G", "HIS": "H", "ILE": "I", "LEU": "L", "LYS": "K",
    "MET": "M", "PHE": "F", "PRO": "P", "SER": "S", "THR": "T", "TRP": "W",
    "TYR": "Y", "VAL": "V", "MSE": "M", "SEC": "U", "PYL": "O", "HID": "H",
    "HIE": "H", "HIP": "H", "HSD": "H", "HSE": "H", "HSP": "H", "CYX": "C",
    "CYM": "C", "ASH": "D", "GLH": "E", "LYN": "K", "SEP": "S", "TPO": "T",
    "PTR": "Y", "CSO": "C", "KCX": "K", "LLP": "K",
}  # fmt: skip
_WATERS = {"HOH", "WAT", "H2O", "DOD", "SOL", "TIP", "TIP3"}
_TWO_LETTER = {
    "CL", "BR", "ZN", "MG", "MN", "FE", "CA", "NA", "CU", "CO", "NI", "CD", "HG",
    "SE", "LI", "AL", "SR", "BA", "CS", "RB", "AS", "SI", "PT", "AU", "AG", "GA",
}  # fmt: skip


def element_from_name(atom_name: str, resname: str = "") -> str:
    """Guess an element from a PDB atom name (columns 13-16) when it is missing.

    Protein atoms start with their element letter (``CA`` is alpha carbon); a
    hetero group whose name is an ion (``ZN``, ``MG``) uses the two-letter element.
    """
    raw = atom_name.rstrip()
    name = raw.strip().upper()
    letters = "".join(c for c in name if c.isalpha())
    if not letters:
        return "X"
    if resname.strip().upper() in THREE_TO_ONE:
        # Hydrogens named like 1HB or HB2 are hydrogens; the rest are C/N/O/S.
        return "H" if letters[0] in "HD" else letters[0]
    # An ion is named after its element (ZN in residue ZN); PDB also starts a
    # two-letter element in column 13, so a 4-character name with no leading
    # blank carries one.
    two = letters[:2]
    if two in _TWO_LETTER and (resname.strip().upper() == two or raw[:1] != " "):
        return two.capitalize()
    return letters[0]


@dataclass
class Residue:
    """One protein residue.

    Attributes:
        chain: Chain identifier.
        number: Residue sequence number.
        icode: Insertion code ('' if none).
        name: Three-letter residue name.
        aa: One-letter code ('X' if unknown).
        atom_names: Atom names.
        elements: Element symbols.
        coords: (A, 3) atom coordinates in Angstrom.
    """

    chain: str
    number: int
    icode: str
    name: str
    aa: str
    atom_names: list[str] = field(default_factory=list)
    elements: list[str] = field(default_factory=list)
    coords: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))

    @property
    def center(self) -> np.ndarray:
        """(3,) alpha-carbon position, or the atom centroid without one."""
        if "CA" in self.atom_names:
            return self.coords[self.atom_names.index("CA")]
        return self.coords.mean(axis=0)


@dataclass
class Structure:
    """Protein residues and hetero atoms of a PDB file.

    Attributes:
        path: Source file.
        residues: Protein residues in file order.
        hetero_names: Residue names of non-water hetero atoms (ligands, ions).
        hetero_elements: Their elements.
        hetero_coords: (H, 3) their coordinates.
    """

    path: str
    residues: list[Residue]
    hetero_names: list[str] = field(default_factory=list)
    hetero_elements: list[str] = field(default_factory=list)
    hetero_coords: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))

    @property
    def chains(self) -> list[str]:
        """Chain identifiers in order of appearance."""
        return list(dict.fromkeys(r.chain for r in self.residues))

    def chain_residues(self, chain: str) -> list[Residue]:
        """Residues of one chain."""
        return [r for r in self.residues if r.chain == chain]

    def sequence(self, chain: str) -> str:
        """One-letter sequence of a chain's observed residues (gaps closed)."""
        return "".join(r.aa for r in self.chain_residues(chain))

    def centers(self) -> np.ndarray:
        """(R, 3) per-residue centres (alpha carbon or centroid)."""
        return np.stack([r.center for r in self.residues])


def _open_text(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", errors="replace") as fh:
        return fh.read().splitlines()


def read_pdb(path: str | Path, keep_hydrogens: bool = False) -> Structure:
    """Read protein residues and hetero atoms from a PDB file (optionally gzipped).

    Args:
        path: The PDB file.
        keep_hydrogens: Keep hydrogen atoms (dropped by default).

    Returns:
        The parsed :class:`Structure`.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If a coordinate record is malformed or no protein residue is
            found; the message names the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: receptor file not found")
    residues: dict[tuple[str, int, str], Residue] = {}
    coords: dict[tuple[str, int, str], list[list[float]]] = {}
    het_names, het_el, het_xyz = [], [], []
    for lineno, line in enumerate(_open_text(path), start=1):
        record = line[:6].strip()
        if record == "ENDMDL":
            break  # first model only
        if record not in ("ATOM", "HETATM"):
            continue
        altloc = line[16:17]
        if altloc not in (" ", "", "A", "1"):
            continue
        try:
            name = line[12:16]
            resname = line[17:20].strip().upper()
            chain = line[21:22].strip()
            number = int(line[22:26])
            icode = line[26:27].strip()
            xyz = [float(line[30:38]), float(line[38:46]), float(line[46:54])]
        except (ValueError, IndexError) as err:
            raise ValueError(
                f"{path}:{lineno}: malformed {record} record "
                f"(expected PDB fixed columns): {line!r}"
            ) from err
        element = line[76:78].strip().capitalize() if len(line) >= 77 else ""
        if not element or not element.isalpha():
            element = element_from_name(name, resname)
        if element in ("H", "D") and not keep_hydrogens:
            continue
        if resname in _WATERS:
            continue
        if resname not in THREE_TO_ONE:
            het_names.append(resname)
            het_el.append(element)
            het_xyz.append(xyz)
            continue
        key = (chain, number, icode)
        if key not in residues:
            residues[key] = Residue(
                chain, number, icode, resname, THREE_TO_ONE[resname]
            )
            coords[key] = []
        residues[key].atom_names.append(name.strip())
        residues[key].elements.append(element)
        coords[key].append(xyz)
    if not residues:
        raise ValueError(f"{path}: no protein ATOM records found (not a receptor?)")
    for key, res in residues.items():
        res.coords = np.asarray(coords[key], dtype=np.float64)
    return Structure(
        str(path),
        list(residues.values()),
        het_names,
        het_el,
        np.asarray(het_xyz, dtype=np.float64).reshape(-1, 3),
    )
