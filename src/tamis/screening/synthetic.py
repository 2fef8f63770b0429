"""Generated mini screening data for the demo and tests (no downloads).

Each of a few *families* has a pocket made of family-specific residues and a
ligand chemotype (a scaffold with varied substituents); the rest of each
protein is random. Decoys come from other scaffolds. This gives encoders a
signal that can be learned in seconds, with answers known by construction.
Files are written in the real formats (PDB, SDF, .ism, DeepDTA TSV).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem

__all__ = [
    "FAMILIES",
    "SyntheticSet",
    "make_synthetic",
    "write_protein_pdb",
    "family_ligands",
]

#: (pocket residue alphabet, ligand scaffold) per family; R is the substituent.
FAMILIES = (
    ("DEKRH", "OC(=O)c1ccc({R})cc1"),
    ("FWYLM", "NS(=O)(=O)c1ccc({R})cc1"),
    ("STNQC", "O=C1NC(=O)C({R})N1"),
    ("AGVIP", "c1ccc2[nH]c({R})nc2c1"),
)
_DECOY_SCAFFOLDS = (
    "CC(C)Oc1ccc({R})cc1",
    "C1CCN(CC1){R}",
    "COc1ccc({R})cn1",
    "CC(=O)N{R}",
    "FC(F)(F)c1cc({R})ccc1",
)
_SUBSTITUENTS = (
    "C",
    "CC",
    "OC",
    "Cl",
    "F",
    "Br",
    "CCC",
    "C(C)C",
    "OCC",
    "N(C)C",
    "C#N",
    "C(F)(F)F",
    "CO",
    "CCO",
    "C9CC9",
    "SC",
    "OC(C)C",
    "CCCC",
)
_BACKGROUND = "ACDEFGHIKLMNPQRSTVWY"


def family_ligands(family: int, n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct-ish SMILES of a family's chemotype (canonical)."""
    scaffold = FAMILIES[family][1]
    return _from_scaffold(scaffold, n, rng)


def _from_scaffold(scaffold: str, n: int, rng: np.random.Generator) -> list[str]:
    out = []
    for _ in range(n):
        sub = _SUBSTITUENTS[int(rng.integers(len(_SUBSTITUENTS)))]
        if rng.random() < 0.5:
            sub = f"C({sub}){_SUBSTITUENTS[int(rng.integers(len(_SUBSTITUENTS)))]}"
        mol = Chem.MolFromSmiles(scaffold.format(R=sub))
        if mol is None:
            mol = Chem.MolFromSmiles(scaffold.format(R="C"))
        out.append(Chem.MolToSmiles(mol))
    return out


def write_protein_pdb(path: Path, sequence: str, centres: np.ndarray) -> None:
    """Write a PDB with N, CA, C, O, CB atoms around the given residue centres."""
    offsets = {
        "N": (-1.2, 0.6, 0.0),
        "CA": (0.0, 0.0, 0.0),
        "C": (1.3, 0.5, 0.0),
        "O": (1.5, 1.7, 0.2),
        "CB": (0.0, -1.0, 1.2),
    }
    three = {
        v: k
        for k, v in {
            "ALA": "A",
            "ARG": "R",
            "ASN": "N",
            "ASP": "D",
            "CYS": "C",
            "GLN": "Q",
            "GLU": "E",
            "GLY": "G",
            "HIS": "H",
            "ILE": "I",
            "LEU": "L",
            "LYS": "K",
            "MET": "M",
            "PHE": "F",
            "PRO": "P",
            "SER": "S",
            "THR": "T",
            "TRP": "W",
            "TYR": "Y",
            "VAL": "V",
        }.items()
    }
    lines, serial = [], 1
    for i, (aa, c) in enumerate(zip(sequence, centres, strict=True), start=1):
        for name, off in offsets.items():
            if name == "CB" and aa == "G":
                continue
            x, y, z = np.asarray(c) + np.asarray(off)
            lines.append(
                f"ATOM  {serial:5d}  {name:<3s} {three[aa]} A{i:4d}    "
                f"{x:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00          {name[0]:>2s}"
            )
            serial += 1
    lines.append("END")
    path.write_text("\n".join(lines) + "\n")


def _write_sdf(path: Path, smiles: str, seed: int) -> None:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    if AllChem.EmbedMolecule(mol, randomSeed=seed) < 0:
        AllChem.EmbedMolecule(mol, randomSeed=seed, useRandomCoords=True)
    mol = Chem.RemoveHs(mol)
    conf = mol.GetConformer()
    pos = conf.GetPositions()
    pos -= pos.mean(0)
    for i, p in enumerate(pos):
        conf.SetAtomPosition(i, p.tolist())
    writer = Chem.SDWriter(str(path))
    writer.write(mol)
    writer.close()


def _protein(
    family: int, rng: np.random.Generator, length: int = 60, n_pocket: int = 12
) -> tuple[str, np.ndarray, np.ndarray]:
    """Sequence, residue centres and pocket mask of one generated protein."""
    # Residue centres: a random walk, then the pocket residues moved onto a
    # shell of radius ~5 A around the origin where the ligand sits.
    steps = rng.normal(size=(length, 3))
    steps /= np.linalg.norm(steps, axis=1, keepdims=True)
    centres = np.cumsum(3.8 * steps, axis=0)
    centres -= centres.mean(0)
    centres += 12.0 * centres / np.linalg.norm(centres, axis=1, keepdims=True)
    start = int(rng.integers(5, length - n_pocket - 5))
    pocket = np.zeros(length, dtype=bool)
    pocket[start : start + n_pocket] = True
    shell = rng.normal(size=(n_pocket, 3))
    shell /= np.linalg.norm(shell, axis=1, keepdims=True)
    centres[pocket] = shell * rng.uniform(4.0, 5.5, size=(n_pocket, 1))
    alphabet = FAMILIES[family][0]
    seq = [
        alphabet[int(rng.integers(len(alphabet)))]
        if pocket[i]
        else _BACKGROUND[int(rng.integers(len(_BACKGROUND)))]
        for i in range(length)
    ]
    return "".join(seq), centres, pocket


@dataclass
class SyntheticSet:
    """Paths of a generated dataset.

    Attributes:
        root: Folder holding everything.
        complexes: Folder of ``<id>/<id>_protein.pdb`` + ``<id>_ligand.sdf``.
        targets: DUD-E style target folders (receptor, crystal ligand, .ism).
        activity: DeepDTA-style activity folder.
        library: A SMILES library file with one bad record.
        families: Family index of each target folder.
    """

    root: Path
    complexes: Path
    targets: list[Path] = field(default_factory=list)
    activity: Path | None = None
    library: Path | None = None
    families: list[int] = field(default_factory=list)


def make_synthetic(
    root: str | Path,
    seed: int = 0,
    complexes_per_family: int = 3,
    targets_per_family: int = 1,
    actives: int = 12,
    decoys: int = 60,
    n_families: int = 4,
) -> SyntheticSet:
    """Write a generated screening dataset under ``root``.

    Args:
        root: Output folder.
        seed: Seed of everything generated.
        complexes_per_family: Training complexes per family.
        targets_per_family: DUD-E style test targets per family.
        actives: Actives per target.
        decoys: Decoys per target.
        n_families: Families used (at most ``len(FAMILIES)``).

    Returns:
        The :class:`SyntheticSet`.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    out = SyntheticSet(root, root / "complexes")
    n_families = min(n_families, len(FAMILIES))

    # Complexes: a protein with its family ligand in the pocket.
    for f in range(n_families):
        for j in range(complexes_per_family):
            cid = f"c{f}{j}"
            folder = out.complexes / cid
            folder.mkdir(parents=True, exist_ok=True)
            seq, centres, _ = _protein(f, rng)
            write_protein_pdb(folder / f"{cid}_protein.pdb", seq, centres)
            _write_sdf(
                folder / f"{cid}_ligand.sdf",
                family_ligands(f, 1, rng)[0],
                seed + 7 * f + j,
            )

    # DUD-E style targets: receptor, crystal ligand, actives and decoys.
    for f in range(n_families):
        for j in range(targets_per_family):
            folder = root / "targets" / f"t{f}{j}"
            folder.mkdir(parents=True, exist_ok=True)
            seq, centres, _ = _protein(f, rng)
            write_protein_pdb(folder / "receptor.pdb", seq, centres)
            _write_sdf(
                folder / "crystal_ligand.sdf",
                family_ligands(f, 1, rng)[0],
                seed + 100 + f,
            )
            act = sorted(set(family_ligands(f, actives, rng)))
            dec = []
            for k in range(decoys):
                scaffold = _DECOY_SCAFFOLDS[k % len(_DECOY_SCAFFOLDS)]
                dec += _from_scaffold(scaffold, 1, rng)
            dec = sorted(set(dec) - set(act))
            (folder / "actives_final.ism").write_text(
                "".join(f"{s} A{i} CHEMBL{i}\n" for i, s in enumerate(act))
            )
            (folder / "decoys_final.ism").write_text(
                "".join(f"{s} D{i}\n" for i, s in enumerate(dec))
            )
            out.targets.append(folder)
            out.families.append(f)

    # Activity table (stage 1): binders 10 nM, non-binders 10 uM, plus a noisy
    # repeated pair, a promiscuous ligand and a PAINS compound.
    act_dir = root / "activity"
    act_dir.mkdir(parents=True, exist_ok=True)
    ligands: dict[str, str] = {}
    proteins: dict[str, str] = {}
    rows = []
    for f in range(n_families):
        for j in range(6):
            pid = f"P{f}{j}"
            proteins[pid] = _protein(f, rng)[0]
            for s in family_ligands(f, 6, rng):
                lid = ligands.setdefault(s, f"L{len(ligands)}")
                rows.append((lid, pid, 10.0))
            for s in family_ligands((f + 1) % n_families, 2, rng):
                lid = ligands.setdefault(s, f"L{len(ligands)}")
                rows.append((lid, pid, 10000.0))
    first = rows[0]
    rows.append((first[0], first[1], 1e5))  # a repeat that disagrees by 4 log units
    pains = ligands.setdefault("S=C1SC(=Cc2ccccc2)C(=O)N1", f"L{len(ligands)}")
    promiscuous = ligands.setdefault("Cc1ccc(C)cc1", f"L{len(ligands)}")
    for pid in proteins:
        rows.append((promiscuous, pid, 5.0))
    rows.append((pains, next(iter(proteins)), 5.0))
    (act_dir / "ligands.tsv").write_text(
        "ligand_id\tsmiles\n" + "".join(f"{v}\t{k}\n" for k, v in ligands.items())
    )
    (act_dir / "proteins.tsv").write_text(
        "protein_id\tsequence\n" + "".join(f"{k}\t{v}\n" for k, v in proteins.items())
    )
    (act_dir / "affinities.tsv").write_text(
        "ligand_id\tprotein_id\tkd_nM\n"
        + "".join(f"{a}\t{b}\t{c:g}\n" for a, b, c in rows)
    )
    out.activity = act_dir

    # A screening library with one unparsable record.
    lib = [*family_ligands(0, 10, rng), *_from_scaffold(_DECOY_SCAFFOLDS[0], 30, rng)]
    out.library = root / "library.smi"
    lines = [f"{s} mol{i}" for i, s in enumerate(lib)]
    lines.insert(3, "C1CC(((bad mol_bad")
    out.library.write_text("\n".join(lines) + "\n")
    return out
