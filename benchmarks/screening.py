"""Benchmark: S²Drug variants against ECFP4 similarity on DUD-E targets.

Compares, per target and as a macro mean (AUROC, BEDROC(80.5), EF0.5/1/5%):

(a) ECFP4 max-Tanimoto to the crystal ligand;
(b) structure-only contrastive model (DrugCLIP-like: pocket encoder only, no
    stage 1, no binding-site task);
(c) S²Drug without the binding-site task (lambda = 0);
(d) S²Drug without bilateral sampling in stage 1;
(e) full S²Drug;

on the DUD-E targets with structures, with leave-target-out cross-validation
over folds of targets; plus the stage-1 sequence-only model on the ligand-only
targets, binding-site AUROC/F1 of held-out crystal complexes, and throughput.

Leave-target-out is enforced three ways: stage 1 drops every activity-table
protein with >= 40% identity to any evaluated target; in stage 2, a fold's
test targets (their pocket, crystal ligand, actives and decoys) are never
training items, and training complexes and training targets with >= 40%
identity to a test target are dropped for that fold.

Run: python benchmarks/screening.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tamis.core.config import from_dict
from tamis.core.io import atomic_write_json
from tamis.core.runs import Run
from tamis.screening.config import TrainConfig
from tamis.screening.data.align import sequence_identity
from tamis.screening.data.complexes import (
    PocketItem,
    find_complexes,
    load_complex,
    load_target_item,
)
from tamis.screening.data.dude import DudeTarget, read_dude_target
from tamis.screening.data.ligands import read_reference_ligand
from tamis.screening.evaluate import ecfp_scores
from tamis.screening.index import LigandIndex
from tamis.screening.metrics import mean_over_targets, screening_metrics
from tamis.screening.model import collate_pockets
from tamis.screening.screen import Screener, pocket_from_files
from tamis.screening.sites import predict_sites, site_metrics
from tamis.screening.train import (
    Trainer,
    load_trained,
    read_fasta,
    save_trained,
    stage1_exclusions,
    stage1_pairs,
    stage1_table,
)

log = logging.getLogger("tamis.bench.screening")

STRUCTURE_TARGETS = (
    "fabp4",
    "inha",
    "xiap",
    "aces",
    "fa10",
    "dhi1",
    "pgh1",
    "pde5a",
    "cdk2",
)
LIGAND_ONLY = (
    "ampc",
    "hs90a",
    "pygm",
    "fak1",
    "glcm",
    "grik1",
    "hivint",
    "hxk4",
    "mapk2",
    "mcr",
    "nos1",
    "nram",
    "pa2ga",
    "pur2",
    "rock1",
)
#: CPU-sized model: ESM2 architecture at 2 layers x 128 (not the 8M shape).
BENCH_MODEL = {
    "esm_layers": 2,
    "esm_hidden": 128,
    "esm_heads": 4,
    "esm_ffn": 256,
    "ligand_dim": 128,
    "ligand_layers": 3,
    "pocket_dim": 128,
    "fused_dim": 128,
    "embed_dim": 128,
    "max_seq_len": 256,
}


def parse_args() -> argparse.Namespace:
    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=here.parent.parent / "shared/data")
    p.add_argument("--out", type=Path, default=here / "results/screening.json")
    p.add_argument("--work", type=Path, default=Path("runs/bench-screening"))
    p.add_argument("--max-decoys", type=int, default=1000)
    p.add_argument("--ligand-only-decoys", type=int, default=500)
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--stage1-steps", type=int, default=100)
    p.add_argument("--stage2-steps", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--throughput-library", type=int, default=500_000)
    p.add_argument(
        "--throughput-only",
        type=Path,
        default=None,
        help="only measure throughput with this trained run directory",
    )
    p.add_argument("--queries", type=int, default=16, help="pockets per index search")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (1 is faster on an oversubscribed box)",
    )
    return p.parse_args()


class Recorder:
    """Collects results and rewrites the JSON after every phase."""

    def __init__(self, path: Path, args: argparse.Namespace) -> None:
        self.path = path
        self.data: dict[str, Any] = {
            "command": " ".join([sys.executable.split("/")[-1], *sys.argv]),
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": "shared 2-core CPU machine (several other jobs running; "
            "timings are indicative only)",
            "torch_threads": torch.get_num_threads(),
            "settings": {k: str(v) for k, v in vars(args).items()},
            "model_shape": BENCH_MODEL,
            "complete": False,
        }

    def put(self, key: str, value: Any) -> None:
        self.data[key] = value
        atomic_write_json(self.path, self.data)


def train_variant(
    name: str, cfg_dict: dict[str, Any], work: Path, pairs, items
) -> tuple[Path, float]:
    """Train one model with prebuilt stage-1 pairs and stage-2 items."""
    cfg = from_dict(TrainConfig, cfg_dict)
    run = Run.create(work, name, cfg, cfg.seed, device="cpu")
    start = time.perf_counter()
    trainer = Trainer(cfg, run, pairs, items)
    last = trainer.fit()
    save_trained(trainer.model, cfg.model, run.path)
    run.write_results({"last": last})
    return run.path, time.perf_counter() - start


def chain_sequence(item: PocketItem) -> str:
    return item.pocket.sequence


def measure_throughput(rec, targets, model_dir, n_index, n_queries=16):
    """Molecules encoded per second and index scores per second."""
    lib = [r for t in targets.values() for r in t.decoys][:4000]
    screener = Screener(load_trained(model_dir), batch_size=512)
    t1 = time.perf_counter()
    from rdkit import Chem

    mols = [Chem.MolFromSmiles(r.smiles) for r in lib]
    emb, _, _ = screener.encode_library(
        [type(r)(r.name, m, r.smiles) for r, m in zip(lib, mols, strict=True)]
    )
    enc_rate = len(lib) / (time.perf_counter() - t1)
    rng = np.random.default_rng(0)
    base_vecs = rng.normal(size=(n_index, 128)).astype(np.float32)
    base_vecs /= np.linalg.norm(base_vecs, axis=1, keepdims=True)
    index = LigandIndex(128)
    index.add(base_vecs, [""] * len(base_vecs), [""] * len(base_vecs))
    queries = base_vecs[:n_queries]
    t1 = time.perf_counter()
    _ = index.search(queries, 100)
    search_rate = len(queries) * len(index) / (time.perf_counter() - t1)
    # All scores (no top-k selection): one dense product, as `screen run --index`.
    t1 = time.perf_counter()
    _ = index.score_all(queries)
    dense_rate = len(queries) * len(index) / (time.perf_counter() - t1)
    rec.put(
        "throughput",
        {
            "molecules_encoded_per_s_from_smiles": enc_rate,
            "index_scores_per_s": search_rate,
            "index_all_scores_per_s_dense": dense_rate,
            "library_size_for_index": len(index),
            "pockets_per_search": n_queries,
            "note": "SMILES parsing + 2D featurisation + graph network, batch 512; "
            "FAISS IndexFlatIP top-100 search for a batch of pockets; dense: every "
            "pocket-ligand score from the index vectors in one matrix product. "
            "Shared, loaded machine.",
        },
    )


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("tamis.screening.data.ligands").setLevel(logging.ERROR)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rec = Recorder(args.out, args)
    scr = args.data_dir / "screening"
    dude = scr / "dude"
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    if args.throughput_only is not None:
        targets = {
            n: read_dude_target(dude / n, args.max_decoys, args.seed)
            for n in ("aces", "fa10", "pde5a", "cdk2")
        }
        measure_throughput(
            rec, targets, args.throughput_only, args.throughput_library, args.queries
        )
        rec.data["complete"] = True
        rec.put("throughput", rec.data["throughput"])
        print(json.dumps(rec.data["throughput"], indent=1))
        return

    # -- targets, ECFP4 baseline ---------------------------------------------
    t0 = time.perf_counter()
    targets: dict[str, DudeTarget] = {}
    for name in STRUCTURE_TARGETS:
        targets[name] = read_dude_target(dude / name, args.max_decoys, args.seed)
    pockets = {
        n: pocket_from_files(t.receptor, t.crystal_ligand) for n, t in targets.items()
    }
    rec.put(
        "targets",
        {
            n: {
                "actives": len(t.actives),
                "decoys": len(t.decoys),
                "skipped_records": t.n_skipped,
                "pocket_residues": len(pockets[n].residue_aa),
            }
            for n, t in targets.items()
        },
    )
    results: dict[str, dict[str, Any]] = {v: {} for v in "abcde"}
    for n, t in targets.items():
        results["a"][n] = screening_metrics(ecfp_scores(t), t.labels, args.seed)
    rec.put("per_target", results)
    log.info("targets and ECFP4 done in %.0f s", time.perf_counter() - t0)

    # -- stage 1 (shared by all folds: every evaluated target excluded) ------
    fasta = read_fasta(dude / "dude_targets.fasta")
    excluded_names = [n for n in (*STRUCTURE_TARGETS, *LIGAND_ONLY) if n in fasta]
    s1_common = {
        "activity": [str(scr / "activity/davis")],
        "positive_threshold": 7.0,
        "exclude_fasta": str(dude / "dude_targets.fasta"),
        "exclude_targets": excluded_names,
        "steps": args.stage1_steps,
        "batch_size": 32,
        "lr": 5e-4,
    }
    base = {
        "out": str(work),
        "seed": args.seed,
        "device": "cpu",
        "checkpoint_every": 1000,
        "model": BENCH_MODEL,
    }
    stage1 = {}
    timings: dict[str, float] = {}
    t1 = time.perf_counter()
    probe_cfg = from_dict(
        TrainConfig, {**base, "stage1": s1_common, "stage2": {"steps": 0}}
    )
    exclude = stage1_exclusions(probe_cfg, stage1_table(probe_cfg))
    timings["stage1_homology_exclusion_s"] = time.perf_counter() - t1
    rec.put("stage1_excluded_proteins", sorted(exclude))
    for tag, sampling in (
        ("bds", {}),
        (
            "nobds",
            {
                "homology_weighting": False,
                "redundancy_removal": False,
                "noise_filter": False,
                "promiscuity_filter": False,
                "pains_filter": False,
            },
        ),
    ):
        cfg_dict = {
            **base,
            "name": f"stage1-{tag}",
            "stage1": {**s1_common, "sampling": sampling},
            "stage2": {"steps": 0},
        }
        t1 = time.perf_counter()
        pairs = stage1_pairs(from_dict(TrainConfig, cfg_dict), exclude)
        prep = time.perf_counter() - t1
        path, secs = train_variant(f"stage1-{tag}", cfg_dict, work, pairs, [])
        stage1[tag] = path
        timings[f"stage1_{tag}_prep_s"] = prep
        timings[f"stage1_{tag}_train_s"] = secs
        rec.put(
            f"stage1_{tag}",
            {
                "sampling": pairs.report.as_dict(),
                "proteins": len(pairs.sequences),
                "run": str(path),
            },
        )
    rec.put("timings", timings)
    measure_throughput(
        rec, targets, stage1["bds"], args.throughput_library, args.queries
    )

    # -- stage-2 items: complexes and targets --------------------------------
    complexes: list[PocketItem] = []
    for root in (
        "complexes/diffdock",
        "complexes/posebusters",
        "complexes/pdbbind-mock",
    ):
        for files in find_complexes(scr / root):
            try:
                item = load_complex(files)
            except ValueError as err:
                log.warning("complex %s skipped: %s", files.name, err)
                continue
            if item.ligands:
                complexes.append(item)
    target_items = {
        n: load_target_item(dude / n, 64, args.seed) for n in STRUCTURE_TARGETS
    }
    seqs = {n: it.pocket.sequence for n, it in target_items.items()}

    # Homology between every training item and every test target.
    def homolog(seq: str, test: list[str]) -> bool:
        return any(sequence_identity(seq[:800], seqs[t][:800]) >= 0.4 for t in test)

    folds = [list(STRUCTURE_TARGETS[i :: args.folds]) for i in range(args.folds)]
    rec.put("folds", folds)
    sites: dict[str, Any] = {}
    gates: dict[str, Any] = {}
    dropped: dict[str, list[str]] = {}
    for f_idx, test in enumerate(folds):
        train_items = [target_items[n] for n in STRUCTURE_TARGETS if n not in test]
        train_items = [
            it for it in train_items if not homolog(chain_sequence(it), test)
        ]
        kept_complexes = [c for c in complexes if not homolog(chain_sequence(c), test)]
        items = train_items + kept_complexes
        dropped[f"fold{f_idx}"] = sorted(
            {it.pocket.name for it in [*target_items.values(), *complexes]}
            - {it.pocket.name for it in items}
            - set(test)
        )
        rec.put("dropped_as_homologs", dropped)
        s2 = {
            "steps": args.stage2_steps,
            "pockets_per_batch": 8,
            "probes": 4,
            "lr": 5e-4,
        }
        variants = {
            "b": ({**BENCH_MODEL, "fusion": "structure"}, None, 0.0),
            "c": (BENCH_MODEL, stage1["bds"], 0.0),
            "d": (BENCH_MODEL, stage1["nobds"], 1.0),
            "e": (BENCH_MODEL, stage1["bds"], 1.0),
        }
        for v, (model, init, bsp) in variants.items():
            cfg_dict = {
                **base,
                "name": f"fold{f_idx}-{v}",
                "model": model,
                "init": str(init) if init else None,
                "stage1": {"steps": 0},
                "stage2": {**s2, "bsp_weight": bsp},
            }
            path, secs = train_variant(f"fold{f_idx}-{v}", cfg_dict, work, None, items)
            timings[f"fold{f_idx}_{v}_train_s"] = secs
            trained = load_trained(path)
            screener = Screener(trained, batch_size=512)
            for n in test:
                t = targets[n]
                p_emb = screener.encode_pockets([pockets[n]])[0]
                emb, _, _ = screener.encode_library(t.library, total=len(t.library))
                results[v][n] = screening_metrics(emb @ p_emb, t.labels, args.seed)
                if v == "e":
                    ref = read_reference_ligand(t.crystal_ligand)
                    probe = target_items[n].ligands[:1] or [ref]
                    probs = predict_sites(
                        trained, target_items[n].pocket.sequence, probe
                    )
                    sites[n] = site_metrics(probs, target_items[n].pocket.site_labels)
                    with torch.no_grad():
                        _, beta, _ = trained.pocket_states(
                            collate_pockets([pockets[n]], trained.shape.max_seq_len)
                        )
                    b = beta[0].detach().numpy()
                    gates[n] = {
                        "mean": float(b.mean()),
                        "min": float(b.min()),
                        "max": float(b.max()),
                    }
            rec.put("per_target", results)
            rec.put("timings", timings)
            log.info("fold %d variant %s done (%.0f s)", f_idx, v, secs)
        rec.put("binding_sites_heldout", sites)
        rec.put("gate_values_heldout", gates)

    summary = {v: mean_over_targets(r) for v, r in results.items() if r}
    rec.put("mean", summary)

    # -- ligand-only targets: stage-1 sequence model, zero-shot --------------
    from tamis.screening.encoders.protein import tokenize

    lo_results: dict[str, Any] = {}
    seq_model = load_trained(stage1["bds"])
    screener = Screener(seq_model, batch_size=512)
    for n in LIGAND_ONLY:
        folder = dude / n if (dude / n).is_dir() else scr / "dude-ligand-only" / n
        if not folder.is_dir() or n not in fasta:
            continue
        t = read_dude_target(folder, args.ligand_only_decoys, args.seed)
        with torch.no_grad():
            p = seq_model.encode_sequences(tokenize([fasta[n][:256]]))[0].numpy()
        emb, _, _ = screener.encode_library(t.library, total=len(t.library))
        lo_results[n] = screening_metrics(emb @ p, t.labels, args.seed)
        rec.put(
            "ligand_only_stage1_sequence_model",
            {"per_target": lo_results, "mean": mean_over_targets(lo_results)},
        )

    rec.data["complete"] = True
    rec.put("mean", summary)
    print(
        json.dumps(
            {"mean": summary, "sites": sites, "throughput": rec.data["throughput"]},
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
