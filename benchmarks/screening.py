"""Benchmark: S²Drug variants against ECFP4 similarity on DUD-E targets.

Compares, per target and as a macro mean (AUROC, BEDROC(80.5), EF0.5/1/5%):

(a) ECFP4 max-Tanimoto to the crystal ligand;
(b) structure-only contrastive model (DrugCLIP-like: pocket encoder only, no
    stage 1, no binding-site task);
(c) S²Drug without the binding-site task (lambda = 0);
(d) S²Drug without bilateral sampling in stage 1;
(e) full S²Drug;

on the DUD-E targets with structures, with leave-target-out cross-validation
over folds of targets, over several seeds (mean and standard deviation per
method and per target); on the ligand-only targets, ECFP4 to one known active
(removed from the library) and the stage-1 sequence-only models; binding-site
AUROC/F1 of held-out crystal complexes per seed; and throughput.

Every molecule is featurised once into an on-disk graph cache
(``<work>/graph-cache/<target>-<digest>.npz``), so each trained model only runs
the network over the full decoy sets.

Leave-target-out is enforced three ways: stage 1 drops every activity-table
protein with >= 40% identity to any evaluated target; in stage 2, a fold's
test targets (their pocket, crystal ligand, actives and decoys) are never
training items, and training complexes and training targets with >= 40%
identity to a test target are dropped for that fold. The folds are the same
for every seed.

Run: nice -n 19 python benchmarks/screening.py --data-dir ../shared/data
Throughput (timed at normal priority under the shared lock, 2 threads):
flock /tmp/tamis-timing.lock python benchmarks/screening.py --throughput RUN_DIR \
    --threads 2 --out benchmarks/results/screening_throughput.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tamis.core.config import from_dict
from tamis.core.io import atomic_write, atomic_write_json, atomic_write_text
from tamis.core.runs import Run
from tamis.screening.baselines import ecfp4
from tamis.screening.config import TrainConfig
from tamis.screening.data.align import sequence_identity
from tamis.screening.data.complexes import (
    PocketItem,
    find_complexes,
    load_complex,
    load_target_item,
)
from tamis.screening.data.dude import DudeTarget, read_dude_target
from tamis.screening.data.ligands import (
    LigandReader,
    LigandRecord,
    read_reference_ligand,
)
from tamis.screening.encoders.ligand import PackedGraphs, featurize
from tamis.screening.encoders.protein import tokenize
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
    p.add_argument(
        "--machine-note",
        default="2-core CPU; other jobs may have shared it (see loadavg_start)",
        help="load conditions of the timings, recorded in the JSON",
    )
    p.add_argument(
        "--max-decoys", type=int, default=0, help="decoys per target (0: all)"
    )
    p.add_argument("--ligand-only-decoys", type=int, default=0, help="(0: all)")
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--stage1-steps", type=int, default=100)
    p.add_argument("--stage2-steps", type=int, default=60)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument(
        "--throughput",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="only measure encoding and index throughput with this trained model",
    )
    p.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        default=None,
        metavar="JSON",
        help="only combine the per-seed results of several runs into --out",
    )
    p.add_argument("--throughput-molecules", type=int, default=4000)
    p.add_argument("--throughput-library", type=int, default=500_000)
    p.add_argument("--repeats", type=int, default=3)
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
            "machine": args.machine_note,
            "loadavg_start": os.getloadavg(),
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


def graph_cache(work: Path, name: str, library: list[LigandRecord]) -> Path:
    """Featurise a library's 2D graphs into the disk cache once; its path."""
    digest = hashlib.sha256("\n".join(r.smiles for r in library).encode()).hexdigest()
    path = work / "graph-cache" / f"{name}-{digest[:16]}.npz"
    if not path.is_file():
        PackedGraphs.from_graphs([featurize(r.mol, False) for r in library]).save(path)
    return path


def _target_record(t: DudeTarget) -> dict[str, Any]:
    return {
        "name": t.name,
        "receptor": str(t.receptor) if t.receptor else None,
        "crystal_ligand": str(t.crystal_ligand) if t.crystal_ligand else None,
        "actives": [[r.name, r.smiles] for r in t.actives],
        "decoys": [[r.name, r.smiles] for r in t.decoys],
        "n_skipped": t.n_skipped,
    }


def _light_target(d: dict[str, Any]) -> DudeTarget:
    """A target without RDKit molecules (names, SMILES, labels, files)."""

    def recs(rows: list[list[str]]) -> list[LigandRecord]:
        return [LigandRecord(name, None, smi) for name, smi in rows]

    return DudeTarget(
        d["name"],
        Path(d["receptor"]) if d["receptor"] else None,
        Path(d["crystal_ligand"]) if d["crystal_ligand"] else None,
        recs(d["actives"]),
        recs(d["decoys"]),
        d["n_skipped"],
    )


def _fingerprint_bits(library: list[LigandRecord]) -> np.ndarray:
    """(N, 2048) boolean ECFP4 bits."""
    bits = np.zeros((len(library), 2048), dtype=bool)
    for i, r in enumerate(library):
        bits[i, list(ecfp4(r.mol).GetOnBits())] = True
    return bits


def prepare_targets(args: argparse.Namespace, fasta: dict[str, str]) -> dict[str, Any]:
    """Targets without molecules, graph caches, ECFP4 results and fingerprints.

    Parsing ~300k molecules with RDKit is the slowest step on a busy machine,
    and holding them takes several GB, so everything derived from them is
    cached once under ``<work>/graph-cache`` (JSON and ``.npz``, no pickle);
    later runs read only the cache.
    """
    scr = args.data_dir / "screening"
    dude = scr / "dude"
    cache = args.work / "graph-cache"
    tag = f"{args.max_decoys}-{args.ligand_only_decoys}"
    meta_path = cache / f"prepared-{tag}.json"
    if not meta_path.is_file():
        meta: dict[str, Any] = {"structure": {}, "ligand_only": {}}
        for n in STRUCTURE_TARGETS:
            t = read_dude_target(dude / n, args.max_decoys or None, 0)
            meta["structure"][n] = {
                **_target_record(t),
                "graphs": str(graph_cache(args.work, n, t.library)),
                "ecfp": screening_metrics(ecfp_scores(t), t.labels, 0),
            }
        for n in LIGAND_ONLY:
            folder = dude / n if (dude / n).is_dir() else scr / "dude-ligand-only" / n
            if not folder.is_dir() or n not in fasta:
                continue
            t = read_dude_target(folder, args.ligand_only_decoys or None, 0)
            fp_path = cache / f"lo-{n}-ecfp4-{tag}.npz"
            bits = _fingerprint_bits(t.library)

            def write(tmp: Path, bits: np.ndarray = bits) -> None:
                with open(tmp, "wb") as fh:
                    np.savez(fh, bits=bits)

            atomic_write(fp_path, write)
            meta["ligand_only"][n] = {
                **_target_record(t),
                "graphs": str(graph_cache(args.work, f"lo-{n}", t.library)),
                "fingerprints": str(fp_path),
            }
        atomic_write_json(meta_path, meta)
    meta = json.loads(meta_path.read_text())
    out: dict[str, Any] = {k: {} for k in ("targets", "graphs", "ecfp")}
    out.update({k: {} for k in ("lo_targets", "lo_graphs", "lo_fps")})
    for n, d in meta["structure"].items():
        out["targets"][n] = _light_target(d)
        out["graphs"][n] = PackedGraphs.load(d["graphs"])
        out["ecfp"][n] = d["ecfp"]
    for n, d in meta["ligand_only"].items():
        out["lo_targets"][n] = _light_target(d)
        out["lo_graphs"][n] = PackedGraphs.load(d["graphs"])
        with np.load(d["fingerprints"], allow_pickle=False) as f:
            out["lo_fps"][n] = f["bits"]
    return out


def mean_std(values: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and (population) standard deviation of each metric over seeds."""
    keys = [k for k in values[0] if not k.startswith("n_")]
    return {
        k: {
            "mean": float(np.mean([v[k] for v in values])),
            "std": float(np.std([v[k] for v in values])),
        }
        for k in keys
    }


def aggregate(per_seed: dict[str, dict[str, dict[str, dict[str, float]]]]):
    """Per method: macro mean per seed, then mean/std over seeds; per target too.

    A seed that did not finish every target counts in the per-target figures
    of the targets it did, and not in the macro mean.
    """
    methods = sorted({m for s in per_seed.values() for m in s})
    out: dict[str, Any] = {}
    for m in methods:
        runs = [s[m] for s in per_seed.values() if s.get(m)]
        if not runs:
            continue
        every = set.union(*(set(r) for r in runs))
        full = [r for r in runs if set(r) == every]
        out[m] = {
            "seeds_complete": len(full),
            "targets": sorted(every),
            "mean_over_targets": (
                mean_std([mean_over_targets(r) for r in full]) if full else {}
            ),
            "per_target": {
                t: {
                    **mean_std([r[t] for r in runs if t in r]),
                    "seeds": sum(t in r for r in runs),
                }
                for t in sorted(every)
            },
        }
    return out


def ligand_only_ecfp(t: DudeTarget, bits: np.ndarray, seed: int) -> dict[str, float]:
    """ECFP4 Tanimoto to one active drawn by ``seed`` (removed from the set).

    Args:
        t: The target (actives first in ``t.library``).
        bits: (N, 2048) ECFP4 bits of ``t.library``.
        seed: Picks the reference active; also the tie-breaking seed.
    """
    ref = int(np.random.default_rng(seed).integers(len(t.actives)))
    others = np.delete(bits, ref, axis=0).astype(np.float32)  # (N - 1, 2048)
    r = bits[ref].astype(np.float32)
    inter = others @ r
    union = others.sum(1) + r.sum() - inter
    scores = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    return screening_metrics(scores, np.delete(t.labels, ref), seed)


SAMPLING_OFF = {
    "homology_weighting": False,
    "redundancy_removal": False,
    "noise_filter": False,
    "promiscuity_filter": False,
    "pains_filter": False,
}


def encoding_rate(screener: Screener, library: Path) -> float:
    """Molecules/s from a SMILES file to embeddings, as ``tamis screen run``.

    Reading (RDKit parsing, canonical SMILES), 2D featurisation and the graph
    network, chunk by chunk.
    """
    start = time.perf_counter()
    emb, _, _ = screener.encode_library(LigandReader(library))
    return len(emb) / (time.perf_counter() - start)


def index_rate(index: LigandIndex, queries: np.ndarray, k: int, repeats: int) -> float:
    """Best pocket-ligand scores/s of ``repeats`` top-k searches."""
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        index.search(queries, k)
        best = max(best, len(queries) * len(index) / (time.perf_counter() - start))
    return best


def measure_throughput(rec: Recorder, args: argparse.Namespace) -> dict[str, Any]:
    """Encoding (SMILES to embedding) and index search throughput."""
    import faiss

    faiss.omp_set_num_threads(args.threads)
    dude = args.data_dir / "screening" / "dude"
    smiles: list[str] = []
    for name in ("aces", "fa10", "pde5a", "dhi1"):
        lines = (dude / name / "decoys_final.ism").read_text().splitlines()
        smiles += [ln.split()[0] for ln in lines[: args.throughput_molecules // 4]]
    out: dict[str, Any] = {"loadavg_before": os.getloadavg()}

    # Encoding: SMILES file -> embeddings, serial and with prefetching.
    library = args.work / "throughput.smi"
    library.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(library, "".join(f"{s} m{i}\n" for i, s in enumerate(smiles)))
    warm = args.work / "throughput-warm.smi"
    atomic_write_text(warm, "".join(f"{s} w{i}\n" for i, s in enumerate(smiles[:256])))
    model = load_trained(args.throughput)
    for bs in (256, 1024):
        for prefetch in (False, True):
            screener = Screener(model, batch_size=bs, prefetch=prefetch)
            encoding_rate(screener, warm)
            rates = [encoding_rate(screener, library) for _ in range(args.repeats)]
            out[f"molecules_per_s_batch{bs}_prefetch_{str(prefetch).lower()}"] = {
                "runs": rates,
                "median": float(np.median(rates)),
            }

    # Index: exact top-100 of 500k unit vectors for batches of pockets.
    rng = np.random.default_rng(0)
    base = rng.normal(size=(args.throughput_library, 128)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    names = [""] * len(base)
    indexes = {
        "torch_float32": LigandIndex(128, "torch"),
        "torch_bfloat16": LigandIndex(128, "torch", "bfloat16"),
        "faiss_flat": LigandIndex(128, "faiss"),
    }
    for key, index in indexes.items():
        index.add(base, names, names)
        for n_q in (16, 64, 256):
            rate = index_rate(index, base[:n_q], 100, args.repeats)
            out[f"index_{key}_top100_{n_q}_pockets_scores_per_s"] = rate
    out["loadavg_after"] = os.getloadavg()
    out["library_size_for_index"] = len(base)
    out["n_molecules"] = len(smiles)
    out["note"] = (
        "normal priority under flock /tmp/tamis-timing.lock; best of repeats for the "
        "index, median for encoding; from SMILES strings, 2D graphs"
    )
    rec.put("throughput", out)
    return out


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("tamis.screening.data.ligands").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    rec = Recorder(args.out, args)
    if args.merge:
        merge_runs(rec, args.merge)
        return
    if args.throughput is not None:
        print(json.dumps(measure_throughput(rec, args), indent=1))
        rec.data["complete"] = True
        rec.put("complete", True)
        return
    scr = args.data_dir / "screening"
    dude = scr / "dude"
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    # -- targets, graph caches, ECFP4 baseline -------------------------------
    t0 = time.perf_counter()
    fasta = read_fasta(dude / "dude_targets.fasta")
    prep = prepare_targets(args, fasta)
    targets, graphs, ecfp = prep["targets"], prep["graphs"], prep["ecfp"]
    lo_targets, lo_graphs = prep["lo_targets"], prep["lo_graphs"]
    lo_fps = prep["lo_fps"]
    pockets = {
        n: pocket_from_files(t.receptor, t.crystal_ligand) for n, t in targets.items()
    }
    timings["read_and_featurise_targets_s"] = time.perf_counter() - t0
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
    rec.put(
        "ligand_only_targets",
        {
            n: {"actives": len(t.actives), "decoys": len(t.decoys)}
            for n, t in lo_targets.items()
        },
    )
    rec.put("timings", timings)
    log.info("targets, caches and ECFP4 ready")

    # -- stage-1 exclusions (shared by all seeds and folds) ------------------
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
        "device": "cpu",
        "checkpoint_every": 1000,
        "model": BENCH_MODEL,
    }
    t1 = time.perf_counter()
    probe_cfg = from_dict(
        TrainConfig, {**base, "stage1": s1_common, "stage2": {"steps": 0}}
    )
    exclude = stage1_exclusions(probe_cfg, stage1_table(probe_cfg))
    timings["stage1_homology_exclusion_s"] = time.perf_counter() - t1
    rec.put("stage1_excluded_proteins", sorted(exclude))

    # -- stage-2 complexes (seed-independent) --------------------------------
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
    folds = [list(STRUCTURE_TARGETS[i :: args.folds]) for i in range(args.folds)]
    rec.put("folds", folds)

    per_seed: dict[int, dict[str, Any]] = {}
    for seed in args.seeds:
        per_seed[seed] = run_seed(
            seed,
            args,
            rec,
            base,
            s1_common,
            exclude,
            complexes,
            folds,
            targets,
            pockets,
            graphs,
            lo_targets,
            lo_graphs,
            lo_fps,
            fasta,
            ecfp,
            timings,
        )
        summarise(rec, per_seed)

    rec.data["loadavg_end"] = os.getloadavg()
    rec.data["complete"] = True
    summarise(rec, per_seed)
    print(json.dumps(rec.data["summary"]["structure"], indent=1)[:4000])


def summarise(rec: Recorder, per_seed: dict[int, dict[str, Any]]) -> None:
    """Rewrite the per-seed results and their mean/std over finished seeds."""
    rec.data["per_seed"] = {str(s): r for s, r in per_seed.items()}
    rec.put(
        "summary",
        {
            "structure": aggregate({s: r["structure"] for s, r in per_seed.items()}),
            "ligand_only": aggregate(
                {s: r["ligand_only"] for s, r in per_seed.items()}
            ),
            "binding_sites": aggregate(
                {s: {"e": r["binding_sites"]} for s, r in per_seed.items()}
            ),
        },
    )


def merge_runs(rec: Recorder, paths: list[Path]) -> None:
    """One summary over the seeds of several finished runs of this script."""
    runs = [json.loads(p.read_text()) for p in paths]
    per_seed = {int(k): v for r in runs for k, v in r.get("per_seed", {}).items()}
    partial = {}
    for r in runs:  # seeds stopped before the end: their finished folds
        for key, value in r.items():
            seed = key.removeprefix("partial_seed")
            if key.startswith("partial_seed") and int(seed) not in per_seed:
                partial[int(seed)] = value
    per_seed.update(partial)
    rec.data["partial_seeds"] = sorted(partial)
    for key in ("targets", "ligand_only_targets", "folds", "stage1_excluded_proteins"):
        rec.data[key] = runs[0].get(key)
    rec.data["merged_from"] = {
        str(p): {k: r.get(k) for k in ("command", "date", "complete", "timings")}
        for p, r in zip(paths, runs, strict=True)
    }
    rec.data["complete"] = all(r.get("complete") for r in runs)
    summarise(rec, per_seed)


def run_seed(
    seed,
    args,
    rec,
    base,
    s1_common,
    exclude,
    complexes,
    folds,
    targets,
    pockets,
    graphs,
    lo_targets,
    lo_graphs,
    lo_fps,
    fasta,
    ecfp,
    timings,
) -> dict[str, Any]:
    """Stage 1, every fold's four variants, ligand-only targets: one seed."""
    out: dict[str, Any] = {
        "structure": {"a": dict(ecfp), "b": {}, "c": {}, "d": {}, "e": {}},
        "binding_sites": {},
        "gates": {},
        "ligand_only": {"ecfp4_one_active": {}, "stage1_bds": {}, "stage1_nobds": {}},
    }
    sd = {**base, "seed": seed}
    dude = args.data_dir / "screening" / "dude"

    # Stage 1 with and without bilateral data sampling.
    stage1: dict[str, Path] = {}
    for tag, sampling in (("bds", {}), ("nobds", SAMPLING_OFF)):
        cfg_dict = {
            **sd,
            "name": f"s{seed}-stage1-{tag}",
            "stage1": {**s1_common, "sampling": sampling},
            "stage2": {"steps": 0},
        }
        pairs = stage1_pairs(from_dict(TrainConfig, cfg_dict), exclude)
        path, secs = train_variant(cfg_dict["name"], cfg_dict, args.work, pairs, [])
        stage1[tag] = path
        timings[f"seed{seed}_stage1_{tag}_train_s"] = secs
        out[f"stage1_{tag}_sampling"] = pairs.report.as_dict()
    rec.put("timings", timings)

    # Stage-2 items: crystal pockets and actives of the structure targets.
    target_items = {n: load_target_item(dude / n, 64, seed) for n in STRUCTURE_TARGETS}
    seqs = {n: it.pocket.sequence for n, it in target_items.items()}

    def homolog(seq: str, test: list[str]) -> bool:
        return any(sequence_identity(seq[:800], seqs[t][:800]) >= 0.4 for t in test)

    dropped: dict[str, list[str]] = {}
    for f_idx, test in enumerate(folds):
        t_fold = time.perf_counter()
        train_items = [
            target_items[n]
            for n in STRUCTURE_TARGETS
            if n not in test and not homolog(seqs[n], test)
        ]
        kept = [c for c in complexes if not homolog(c.pocket.sequence, test)]
        items = train_items + kept
        dropped[f"fold{f_idx}"] = sorted(
            {it.pocket.name for it in [*target_items.values(), *complexes]}
            - {it.pocket.name for it in items}
            - set(test)
        )
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
            name = f"s{seed}-fold{f_idx}-{v}"
            cfg_dict = {
                **sd,
                "name": name,
                "model": model,
                "init": str(init) if init else None,
                "stage1": {"steps": 0},
                "stage2": {**s2, "bsp_weight": bsp},
            }
            path, secs = train_variant(name, cfg_dict, args.work, None, items)
            timings[f"seed{seed}_fold{f_idx}_{v}_train_s"] = secs
            trained = load_trained(path)
            screener = Screener(trained, batch_size=1024)
            t_enc = time.perf_counter()
            for n in test:
                p_emb = screener.encode_pockets([pockets[n]])[0]
                emb = screener.encode_packed(graphs[n])
                out["structure"][v][n] = screening_metrics(
                    emb @ p_emb, targets[n].labels, seed
                )
                if v == "e":
                    eval_sites(
                        out, n, trained, target_items[n], targets[n], seed, pockets
                    )
            timings[f"seed{seed}_fold{f_idx}_{v}_encode_s"] = (
                time.perf_counter() - t_enc
            )
        timings[f"seed{seed}_fold{f_idx}_total_s"] = time.perf_counter() - t_fold
        out["dropped_as_homologs"] = dropped
        rec.put("timings", timings)
        rec.put(f"partial_seed{seed}", out)
        log.info(
            "seed %d fold %d done in %.0f s", seed, f_idx, time.perf_counter() - t_fold
        )

    # Ligand-only targets: ECFP4 to one active, stage-1 sequence models.
    t_lo = time.perf_counter()
    for n, t in lo_targets.items():
        out["ligand_only"]["ecfp4_one_active"][n] = ligand_only_ecfp(t, lo_fps[n], seed)
    for tag in ("bds", "nobds"):
        seq_model = load_trained(stage1[tag])
        screener = Screener(seq_model, batch_size=1024)
        for n, t in lo_targets.items():
            with torch.inference_mode():
                tokens = tokenize([fasta[n][: BENCH_MODEL["max_seq_len"]]])
                p = seq_model.encode_sequences(tokens)[0].numpy()
            emb = screener.encode_packed(lo_graphs[n])
            out["ligand_only"][f"stage1_{tag}"][n] = screening_metrics(
                emb @ p, t.labels, seed
            )
    timings[f"seed{seed}_ligand_only_s"] = time.perf_counter() - t_lo
    rec.put("timings", timings)
    return out


def eval_sites(out, n, trained, item, target, seed, pockets) -> None:
    """Binding-site metrics and gate values of a held-out crystal complex."""
    ref = read_reference_ligand(target.crystal_ligand)
    probe = item.ligands[:1] or [ref]
    probs = predict_sites(trained, item.pocket.sequence, probe)
    out["binding_sites"][n] = site_metrics(probs, item.pocket.site_labels, seed=seed)
    with torch.inference_mode():
        _, beta, _ = trained.pocket_states(
            collate_pockets([pockets[n]], trained.shape.max_seq_len)
        )
    b = beta[0].numpy()
    out["gates"][n] = {
        "mean": float(b.mean()),
        "min": float(b.min()),
        "max": float(b.max()),
    }


if __name__ == "__main__":
    main()
