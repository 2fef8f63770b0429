"""Screening data: PDB and ligand readers, pockets, DUD-E folders, activity pairs."""
