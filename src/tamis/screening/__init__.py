"""Virtual screening: protein and ligand data, encoders, S²Drug, metrics."""
