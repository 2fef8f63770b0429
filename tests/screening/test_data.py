"""Readers, pockets, alignment and DUD-E folders on small written files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from tamis.screening.data.activity import read_activity
from tamis.screening.data.align import global_align, map_positions, sequence_identity
from tamis.screening.data.complexes import find_complexes, load_complex
from tamis.screening.data.dude import read_dude_target
from tamis.screening.data.ligands import (
    LigandReader,
    read_ligands,
    read_reference_ligand,
)
from tamis.screening.data.pdb import element_from_name, read_pdb
from tamis.screening.data.pockets import Box, extract_pocket, read_vina_box
from tamis.screening.synthetic import write_protein_pdb

# Two residues, no element column (as in DUD-E's pde5a), a zinc ion and a water.
PDB_NO_ELEMENT = """\
ATOM      1  N   THR   537      -3.982  28.215  83.642
ATOM      2  CA  THR   537      -2.685  28.492  84.329
ATOM      3  C   THR   537      -2.853  28.484  85.842
ATOM      4  N   GLY   538      -1.000  28.000  86.500
ATOM      5  CA  GLY   538       0.000  28.000  87.000
HETATM    6 ZN    ZN   901       1.000  29.000  88.000
HETATM    7  O   HOH   902       5.000  29.000  88.000
END
"""


def test_pdb_without_element_column_and_ions(tmp_path: Path) -> None:
    path = tmp_path / "r.pdb"
    path.write_text(PDB_NO_ELEMENT)
    s = read_pdb(path)
    assert [r.aa for r in s.residues] == ["T", "G"]
    assert s.residues[0].elements == ["N", "C", "C"]
    assert s.hetero_names == ["ZN"] and s.hetero_elements == ["Zn"]
    assert s.sequence("") == "TG"
    np.testing.assert_allclose(s.residues[1].center, [0.0, 28.0, 87.0])


def test_element_guess() -> None:
    assert element_from_name(" CA ", "ALA") == "C"
    assert element_from_name("CA  ", "CA") == "Ca"
    assert element_from_name("ZN  ", "ZN") == "Zn"
    assert element_from_name(" CL1", "LIG") == "C"
    assert element_from_name("CL1 ", "LIG") == "Cl"


def test_unreadable_receptor_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.pdb"):
        read_pdb(tmp_path / "missing.pdb")
    bad = tmp_path / "bad.pdb"
    bad.write_text("ATOM      1  CA  ALA A   1      xx.xxx  28.492  84.329\n")
    with pytest.raises(ValueError, match=r"bad.pdb:1"):
        read_pdb(bad)
    empty = tmp_path / "empty.pdb"
    empty.write_text("REMARK nothing\n")
    with pytest.raises(ValueError, match="no protein"):
        read_pdb(empty)


def _write_sdf(path: Path, smiles: list[str], gz: bool = False) -> None:
    blocks = []
    for i, s in enumerate(smiles):
        mol = Chem.AddHs(Chem.MolFromSmiles(s))
        AllChem.EmbedMolecule(mol, randomSeed=i)
        mol.SetProp("_Name", f"m{i}")
        blocks.append(Chem.MolToMolBlock(mol) + "$$$$\n")
    text = "".join(blocks)
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)


def test_smiles_reader_skips_bad_records_with_count(tmp_path: Path) -> None:
    path = tmp_path / "lib.smi"
    path.write_text("CCO ethanol\nC1CC(( bad\n\nc1ccccc1 benzene\nN#N n2\n")
    reader = LigandReader(path)
    records = list(reader)
    assert [r.name for r in records] == ["ethanol", "benzene", "n2"]
    assert reader.n_skipped == 1 and reader.skipped == [f"{path}:2"]


def test_tsv_and_ism_columns(tmp_path: Path) -> None:
    tsv = tmp_path / "a.tsv"
    tsv.write_text("CHEMBL1\tCCO\nCHEMBL1\tCC[O-]\nCHEMBL2\tCCN\n")
    records, skipped = read_ligands(tsv, unique=True)
    # The protonation variant shares the identifier and is dropped.
    assert [r.name for r in records] == ["CHEMBL1", "CHEMBL2"] and skipped == 0
    ism = tmp_path / "a.ism"
    ism.write_text("CCO 1 CHEMBL9\nCCC 2 CHEMBL8\n")
    assert [r.name for r in read_ligands(ism)[0]] == ["1", "2"]


def test_sdf_gz_and_mol2(tmp_path: Path) -> None:
    sdf = tmp_path / "a.sdf.gz"
    _write_sdf(sdf, ["CCO", "c1ccccc1O"], gz=True)
    records, _ = read_ligands(sdf)
    assert [r.name for r in records] == ["m0", "m1"]
    assert records[0].mol.GetNumConformers() == 1
    # mol2: two records written by hand, the second one broken.
    mol2 = tmp_path / "b.mol2"
    mol2.write_text(
        "@<TRIPOS>MOLECULE\nwater\n 3 2 0 0 0\nSMALL\nNO_CHARGES\n\n"
        "@<TRIPOS>ATOM\n"
        "      1 O1  0.0000 0.0000 0.0000 O.3 1 HOH 0.0\n"
        "      2 H1  0.9572 0.0000 0.0000 H 1 HOH 0.0\n"
        "      3 H2 -0.2400 0.9266 0.0000 H 1 HOH 0.0\n"
        "@<TRIPOS>BOND\n     1 1 2 1\n     2 1 3 1\n"
        "@<TRIPOS>MOLECULE\nbroken\n 1 0 0 0 0\nSMALL\nNO_CHARGES\n\n"
        "@<TRIPOS>ATOM\n      1 X1 nan 0 0 Xx 1 UNK 0.0\n"
    )
    reader = LigandReader(mol2)
    records = list(reader)
    assert [r.smiles for r in records] == ["O"] and reader.n_skipped == 1


def test_unknown_format_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "lib.xyz"
    path.write_text("x")
    with pytest.raises(ValueError, match="unknown ligand format"):
        list(LigandReader(path))


def test_alignment_maps_across_gaps() -> None:
    full = "MKTAYIAKQRQISFVKSHFSRQ"
    observed = full[2:8] + full[12:20]  # two missing segments
    mapping = map_positions(observed, full)
    np.testing.assert_array_equal(mapping, [*range(2, 8), *range(12, 20)])
    assert sequence_identity(full, full) == 1.0
    m, score = global_align("AC", "AC")
    assert list(m) == [0, 1] and score == 4.0


def test_pocket_cutoff_and_labels(tmp_path: Path) -> None:
    # Residue centres on a line at x = 0, 3, 6, ..., ligand atom at the origin.
    seq = "ACDEFGHIK"
    centres = np.array([[3.0 * i, 20.0, 0.0] for i in range(len(seq))])
    centres[:, 1] = 0.0
    path = tmp_path / "p.pdb"
    write_protein_pdb(path, seq, centres)
    s = read_pdb(path)
    lig = np.zeros((1, 3))
    pocket = extract_pocket(s, "p", lig, cutoff=4.0, label_cutoff=4.0)
    # Atoms sit within ~1.9 A of each centre: residues at x=0 and x=3 qualify.
    assert pocket.residue_aa == "AC"
    np.testing.assert_array_equal(pocket.seq_positions, [0, 1])
    np.testing.assert_array_equal(np.flatnonzero(pocket.site_labels), [0, 1])
    # Full-sequence mapping: the structure misses a leading residue.
    pocket2 = extract_pocket(s, "p", lig, cutoff=4.0, full_sequence="M" + seq)
    np.testing.assert_array_equal(pocket2.seq_positions, [1, 2])
    assert pocket2.site_labels[0] == 0 and pocket2.site_labels[1] == 1
    box_pocket = extract_pocket(s, "b", box=Box((9.0, 0.0, 0.0), (2.0, 2.0, 2.0)))
    assert box_pocket.residue_aa == "E"
    with pytest.raises(ValueError, match="no residue"):
        extract_pocket(s, "far", np.array([[100.0, 0, 0]]))


def test_vina_box(tmp_path: Path) -> None:
    path = tmp_path / "conf.txt"
    path.write_text(
        "center_x = 1\ncenter_y = -2.5\ncenter_z = 3\n"
        "size_x = 10\nsize_y = 11\nsize_z = 12\n"
    )
    box = read_vina_box(path)
    assert box.center == (1.0, -2.5, 3.0) and box.size == (10.0, 11.0, 12.0)
    path.write_text("center_x = 1\n")
    with pytest.raises(ValueError, match="center_y"):
        read_vina_box(path)


def test_dude_folder_and_complexes(synthetic) -> None:
    target = read_dude_target(synthetic.targets[0])
    assert target.receptor.name == "receptor.pdb"
    assert len(target.actives) > 0 and len(target.decoys) > 0
    assert target.labels.sum() == len(target.actives)
    sub = read_dude_target(synthetic.targets[0], max_decoys=5, seed=0)
    assert len(sub.decoys) == 5
    found = find_complexes(synthetic.complexes)
    assert len(found) == 6
    item = load_complex(found[0])
    assert item.ligands and item.pocket.site_labels.sum() > 0
    ref = read_reference_ligand(found[0].ligand)
    assert ref.GetNumConformers() == 1


def test_activity_folder_converts_nm(synthetic, tmp_path: Path) -> None:
    table = read_activity(synthetic.activity)
    assert table.affinity.max() == pytest.approx(9 - np.log10(5.0))
    assert len(table.sequences) == 18
    csv = tmp_path / "c.csv"
    csv.write_text("SMILES,Target Sequence,Label\nCCO,MKT,1\nCCN,MKT,0\nCCC,AAA,1\n")
    t2 = read_activity(csv)
    assert len(t2) == 3 and len(t2.sequences) == 2
    bad = tmp_path / "d.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="SMILES column"):
        read_activity(bad)


def test_numpy_and_biopython_alignments_agree_on_identity() -> None:
    from tamis.screening.data import align

    rng = np.random.default_rng(3)
    letters = list("ACDEFGHIKLMNPQRSTVWY")
    full = "".join(rng.choice(letters, 300))
    frag = "".join(c if rng.random() > 0.3 else "W" for c in full[50:200])
    numpy_map, _ = align.global_align(frag, full)
    fast_map = align.align_mapping(frag, full)

    def identical(mapping: np.ndarray) -> float:
        pairs = zip(frag, mapping, strict=True)
        return float(np.mean([full[j] == c for c, j in pairs if j >= 0]))

    same_numpy, same_fast = identical(numpy_map), identical(fast_map)
    assert abs(same_numpy - same_fast) < 0.05
    assert np.median(numpy_map[numpy_map >= 0] - np.flatnonzero(numpy_map >= 0)) == 50
