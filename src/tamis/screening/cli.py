"""``tamis screen``: train, evaluate, screen a library, build an index, sites."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import click

from tamis.cli_common import fail_on_errors

_PATH = click.Path(path_type=Path)
_EXISTING = click.Path(exists=True, path_type=Path)


@click.group(name="screen")
def group() -> None:
    """Virtual screening with S²Drug: training, screening, binding sites."""


@group.command()
@click.argument("config", type=_EXISTING)
@click.argument("overrides", nargs=-1)
@click.option("--run-dir", type=_PATH, default=None, help="Exact run directory.")
def train(config: Path, overrides: tuple[str, ...], run_dir: Path | None) -> None:
    """Two-stage training from a ``screen-train`` CONFIG (key=value overrides)."""
    from tamis.core.config import load_config
    from tamis.screening.config import TrainConfig
    from tamis.screening.train import run_training

    with fail_on_errors():
        cfg = load_config(TrainConfig, config, overrides)
        path = run_training(cfg, run_dir=run_dir)
    click.echo(f"run: {path}")


@group.command()
@click.argument("targets", nargs=-1, type=_EXISTING, required=True)
@click.option(
    "--model",
    "model_dir",
    type=_EXISTING,
    default=None,
    help="Trained run directory (omit for the ECFP4 baseline only).",
)
@click.option("--max-decoys", type=int, default=None, help="Subsample decoys.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=_PATH, default=Path("runs/screening"), show_default=True)
@click.option("--no-ecfp", is_flag=True, help="Skip the ECFP4 baseline.")
def evaluate(
    targets: tuple[Path, ...],
    model_dir: Path | None,
    max_decoys: int | None,
    seed: int,
    out: Path,
    no_ecfp: bool,
) -> None:
    """Screen DUD-E style TARGETS folders and report AUROC, BEDROC and EF."""
    from tamis.core.config import from_dict
    from tamis.screening.config import EvaluateConfig
    from tamis.screening.evaluate import run_evaluation

    with fail_on_errors():
        cfg = from_dict(
            EvaluateConfig,
            {
                "checkpoint": str(model_dir) if model_dir else None,
                "targets": [str(t) for t in targets],
                "max_decoys": max_decoys,
                "seed": seed,
                "out": str(out),
                "ecfp_baseline": not no_ecfp,
            },
        )
        path = run_evaluation(cfg)
        results = json.loads((path / "results.json").read_text())
    for name, res in results.items():
        mean = res["mean"]
        click.echo(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in mean.items()))
    click.echo(f"run: {path}")


def _pocket(receptor: Path, ligand_ref: Path | None, box: Path | None, cutoff: float):  # noqa: ANN202
    from tamis.screening.data.pockets import read_vina_box
    from tamis.screening.screen import pocket_from_files

    if ligand_ref is None and box is None:
        raise click.UsageError("give --ligand-ref or --box to define the pocket")
    return pocket_from_files(
        receptor, ligand_ref, read_vina_box(box) if box else None, cutoff
    )


@group.command("run")
@click.option(
    "--model", "model_dir", type=_EXISTING, required=True, help="Trained run directory."
)
@click.option("--receptor", type=_EXISTING, required=True, help="Receptor PDB.")
@click.option(
    "--ligand-ref",
    type=_EXISTING,
    default=None,
    help="Reference ligand (SDF/mol2/PDB) defining the pocket.",
)
@click.option("--box", type=_EXISTING, default=None, help="Vina box config.")
@click.option("--library", type=_EXISTING, default=None, help="Ligand library.")
@click.option(
    "--index",
    "index_dir",
    type=_EXISTING,
    default=None,
    help="Prebuilt ligand index (instead of --library).",
)
@click.option("--out", type=_PATH, required=True, help="Ranked CSV to write.")
@click.option("--top", type=int, default=None, help="Keep only the best N.")
@click.option("--cutoff", type=float, default=6.0, show_default=True)
@click.option("--batch-size", type=int, default=512, show_default=True)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed that breaks score ties.",
)
def run_screen(
    model_dir: Path,
    receptor: Path,
    ligand_ref: Path | None,
    box: Path | None,
    library: Path | None,
    index_dir: Path | None,
    out: Path,
    top: int | None,
    cutoff: float,
    batch_size: int,
    seed: int,
) -> None:
    """Rank a library (or an index) against one pocket; write a CSV."""
    import numpy as np

    from tamis.screening.index import LigandIndex
    from tamis.screening.metrics import rank_order
    from tamis.screening.screen import Ranking, Screener, write_ranking
    from tamis.screening.train import load_trained

    if (library is None) == (index_dir is None):
        raise click.UsageError("give exactly one of --library and --index")
    with fail_on_errors():
        screener = Screener(load_trained(model_dir), batch_size)
        pocket = _pocket(receptor, ligand_ref, box, cutoff)
        skipped = 0
        if library is not None:
            ranking, skipped = screener.screen_file(pocket, library, seed)
        else:
            index = LigandIndex.load(index_dir)
            scores = index.score_all(screener.encode_pockets([pocket]))[0]
            order = rank_order(scores, seed)
            ranking = Ranking(
                [index.names[i] for i in order],
                [index.smiles[i] for i in order],
                scores[order],
            )
        if top:
            ranking = Ranking(
                ranking.names[:top],
                ranking.smiles[:top],
                np.asarray(ranking.scores[:top]),
            )
        write_ranking(ranking, out)
    click.echo(f"ranked {len(ranking.names)} molecules ({skipped} skipped): {out}")


@group.command("index")
@click.option("--model", "model_dir", type=_EXISTING, required=True)
@click.option("--library", type=_EXISTING, required=True)
@click.option("--out", type=_PATH, required=True, help="Index folder to write.")
@click.option("--batch-size", type=int, default=512, show_default=True)
@click.option(
    "--backend",
    type=click.Choice(["auto", "torch", "faiss"]),
    default="auto",
    show_default=True,
    help="auto: exact blocked GEMM (torch) for flat search, FAISS otherwise.",
)
@click.option(
    "--storage",
    type=click.Choice(["float32", "float16", "bfloat16"]),
    default="float32",
    show_default=True,
    help="Vector storage of the torch backend (float32 accumulation).",
)
@click.option(
    "--faiss-factory",
    default="Flat",
    show_default=True,
    help="FAISS index factory string, e.g. IVF4096,PQ32 for huge libraries.",
)
def build_index(
    model_dir: Path,
    library: Path,
    out: Path,
    batch_size: int,
    backend: str,
    storage: str,
    faiss_factory: str,
) -> None:
    """Encode a library once into an index for many pockets."""
    from tamis.screening.data.ligands import LigandReader
    from tamis.screening.index import LigandIndex
    from tamis.screening.screen import Screener
    from tamis.screening.train import load_trained

    with fail_on_errors():
        model = load_trained(model_dir)
        screener = Screener(model, batch_size)
        reader = LigandReader(library)
        emb, names, smiles = screener.encode_library(reader)
        index = LigandIndex(
            model.shape.embed_dim, backend, storage, faiss_factory=faiss_factory
        )
        index.add(emb, names, smiles)
        index.save(out)
    click.echo(f"indexed {len(index)} molecules ({reader.n_skipped} skipped): {out}")


@group.command()
@click.option("--model", "model_dir", type=_EXISTING, required=True)
@click.option("--receptor", type=_EXISTING, required=True)
@click.option(
    "--probes",
    type=_EXISTING,
    required=True,
    help="Ligand file of probes (known or candidate binders).",
)
@click.option("--chain", default=None, help="Chain (default: the first).")
@click.option(
    "--ligand-ref",
    type=_EXISTING,
    default=None,
    help="Crystal ligand: also score predictions against its site.",
)
@click.option("--threshold", type=float, default=0.5, show_default=True)
@click.option("--out", type=_PATH, required=True, help="Per-residue CSV.")
def sites(
    model_dir: Path,
    receptor: Path,
    probes: Path,
    chain: str | None,
    ligand_ref: Path | None,
    threshold: float,
    out: Path,
) -> None:
    """Predict per-residue binding sites of a receptor chain."""
    import numpy as np

    from tamis.core.io import atomic_write_text
    from tamis.screening.data.ligands import read_ligands, read_reference_ligand
    from tamis.screening.data.pdb import read_pdb
    from tamis.screening.data.pockets import extract_pocket
    from tamis.screening.sites import predict_sites, site_metrics
    from tamis.screening.train import load_trained

    with fail_on_errors():
        structure = read_pdb(receptor)
        chain = chain if chain is not None else structure.chains[0]
        if chain not in structure.chains:
            raise ValueError(f"--chain {chain!r}: not in {structure.chains}")
        residues = structure.chain_residues(chain)
        sequence = "".join(r.aa for r in residues)
        mols = [r.mol for r in read_ligands(probes)[0]]
        probs = predict_sites(load_trained(model_dir), sequence, mols)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["chain", "number", "residue", "probability", "predicted"])
        for r, p in zip(residues, probs, strict=True):
            w.writerow(
                [chain, f"{r.number}{r.icode}", r.name, f"{p:.4f}", int(p >= threshold)]
            )
        atomic_write_text(out, buf.getvalue())
        if ligand_ref is not None:
            ref = read_reference_ligand(ligand_ref)
            heavy = np.array([a.GetAtomicNum() > 1 for a in ref.GetAtoms()])
            pocket = extract_pocket(
                structure, "ref", ref.GetConformer().GetPositions()[heavy]
            )
            if pocket.sequence == sequence:
                m = site_metrics(probs, pocket.site_labels, threshold)
                click.echo(
                    "sites: "
                    + ", ".join(
                        f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in m.items()
                    )
                )
    click.echo(f"sites: {out}")
