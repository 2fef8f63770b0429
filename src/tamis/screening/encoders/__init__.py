"""Encoders: ligand graphs, ESM2-shaped sequences, pocket structure, residue gate."""
