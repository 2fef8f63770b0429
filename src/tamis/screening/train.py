"""Two-stage S²Drug training with checkpoints and resume.

Stage 1 pairs protein sequences (mean-pooled ESM2) with ligands from activity
tables, drawn with the bilateral sampling weights. Stage 2 pairs fused
sequence-structure pockets with their ligands and adds the binding-site loss
``L = L_fc + lambda * L_bsp``. Both use the symmetric InfoNCE with in-batch
duplicates masked. Reference: He et al., arXiv:2511.07006.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rdkit import Chem
from safetensors.torch import load_file, save_file

from tamis.core.checkpoint import (
    capture_training_state,
    latest_checkpoint,
    restore_training_state,
    save_checkpoint,
)
from tamis.core.config import from_dict, to_dict
from tamis.core.device import resolve_device
from tamis.core.io import atomic_write, atomic_write_json
from tamis.core.progress import progress
from tamis.core.runs import Run
from tamis.screening.config import ModelConfig, TrainConfig
from tamis.screening.data.activity import ActivityTable, read_activity
from tamis.screening.data.complexes import (
    PocketItem,
    find_complexes,
    load_complex,
    load_target_item,
)
from tamis.screening.data.sampling import (
    PairSet,
    SamplingOptions,
    build_pairs,
    homologous_to,
)
from tamis.screening.encoders.ligand import LigandGraph, collate_graphs, featurize
from tamis.screening.encoders.protein import tokenize
from tamis.screening.losses import (
    binding_site_loss,
    duplicate_mask,
    symmetric_info_nce,
)
from tamis.screening.model import ModelShape, S2Drug, collate_pockets

__all__ = [
    "GraphCache",
    "build_model",
    "read_fasta",
    "stage1_pairs",
    "stage1_table",
    "stage1_exclusions",
    "stage2_items",
    "Trainer",
    "run_training",
    "load_trained",
    "save_trained",
]

log = logging.getLogger(__name__)


class GraphCache:
    """Featurised ligand graphs keyed by SMILES (each molecule featurised once)."""

    def __init__(self, use_3d: bool = False) -> None:
        self.use_3d = use_3d
        self._graphs: dict[str, LigandGraph] = {}

    def get(self, smiles: str, mol: Chem.Mol | None = None) -> LigandGraph:
        """Graph of ``smiles`` (parsed from ``mol`` when given)."""
        if smiles not in self._graphs:
            mol = mol if mol is not None else Chem.MolFromSmiles(smiles)
            if mol is None:
                raise ValueError(f"ligand SMILES {smiles!r} cannot be parsed by RDKit")
            self._graphs[smiles] = featurize(mol, self.use_3d)
        return self._graphs[smiles]


def build_model(cfg: ModelConfig) -> S2Drug:
    """An :class:`S2Drug` from its config section."""
    return S2Drug(
        ModelShape(
            embed_dim=cfg.embed_dim,
            ligand_dim=cfg.ligand_dim,
            ligand_layers=cfg.ligand_layers,
            esm_layers=cfg.esm_layers,
            esm_hidden=cfg.esm_hidden,
            esm_heads=cfg.esm_heads,
            esm_ffn=cfg.esm_ffn,
            esm_weights=cfg.weights,
            pocket_dim=cfg.pocket_dim,
            pocket_layers=cfg.pocket_layers,
            fused_dim=cfg.fused_dim,
            fusion_layers=cfg.fusion_layers,
            fusion=cfg.fusion,
            bsp_dim=cfg.bsp_dim,
            bsp_activation=cfg.bsp_activation,
            bsp_site_count=cfg.bsp_site_count,
            max_seq_len=cfg.max_seq_len,
        )
    )


def read_fasta(path: str | Path) -> dict[str, str]:
    """Name (first word of the header) -> sequence."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: FASTA file not found")
    out: dict[str, str] = {}
    name = None
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if line.startswith(">"):
            name = line[1:].split()[0] if line[1:].split() else f"record{lineno}"
            out.setdefault(name, "")
        elif line.strip():
            if name is None:
                raise ValueError(f"{path}:{lineno}: sequence before the first header")
            out[name] += line.strip().upper()
    return out


def stage1_table(cfg: TrainConfig) -> ActivityTable:
    """All stage-1 activity tables, concatenated."""
    tables = [read_activity(p) for p in cfg.stage1.activity]
    table = tables[0]
    for other in tables[1:]:
        table.smiles += other.smiles
        table.ligand_ids += other.ligand_ids
        table.protein_ids += other.protein_ids
        table.sequences.update(other.sequences)
        table.affinity = np.r_[table.affinity, other.affinity]
    return table


def stage1_exclusions(cfg: TrainConfig, table: ActivityTable) -> set[str]:
    """Protein ids of ``table`` homologous to the configured test targets."""
    s1 = cfg.stage1
    if not s1.exclude_fasta:
        return set()
    refs = read_fasta(s1.exclude_fasta)
    names = s1.exclude_targets or list(refs)
    missing = [n for n in names if n not in refs]
    if missing:
        raise ValueError(f"stage1.exclude_targets: {missing} not in {s1.exclude_fasta}")
    exclude = homologous_to(
        table.sequences, [refs[n] for n in names], s1.exclude_identity
    )
    log.info(
        "stage 1: %d of %d proteins excluded as homologs of test targets",
        len(exclude),
        len(table.sequences),
    )
    return exclude


def stage1_pairs(cfg: TrainConfig, exclude: set[str] | None = None) -> PairSet | None:
    """Positive pairs of stage 1 after target exclusion and sampling.

    Args:
        cfg: The config.
        exclude: Precomputed excluded protein ids (default: computed from
            ``stage1.exclude_fasta``).
    """
    s1 = cfg.stage1
    if s1.steps == 0 or not s1.activity:
        return None
    table = stage1_table(cfg)
    if exclude is None:
        exclude = stage1_exclusions(cfg, table)
    sw = s1.sampling
    options = SamplingOptions(
        homology_weighting=sw.homology_weighting,
        identity=sw.identity,
        alpha=sw.alpha,
        redundancy_removal=sw.redundancy_removal,
        redundancy_identity=sw.redundancy_identity,
        noise_filter=sw.noise_filter,
        noise_delta=sw.noise_delta,
        promiscuity_filter=sw.promiscuity_filter,
        max_partners=sw.max_partners,
        pains_filter=sw.pains_filter,
        positive_threshold=s1.positive_threshold,
    )
    return build_pairs(table, options, exclude)


def stage2_items(cfg: TrainConfig) -> list[PocketItem]:
    """Pockets with positives from complex folders and DUD-E target folders."""
    s2 = cfg.stage2
    items: list[PocketItem] = []
    for root in s2.complexes:
        for files in find_complexes(root):
            try:
                item = load_complex(files, s2.pocket_cutoff, s2.label_cutoff)
            except ValueError as err:
                log.warning("complex %s skipped: %s", files.name, err)
                continue
            if item.ligands:
                items.append(item)
    for folder in s2.targets:
        items.append(
            load_target_item(
                folder, s2.max_actives, cfg.seed, s2.pocket_cutoff, s2.label_cutoff
            )
        )
    if s2.steps and len(items) < 2:
        raise ValueError(
            f"stage2: {len(items)} usable pocket(s) found in complexes/targets; "
            "contrastive training needs at least 2"
        )
    return items


def save_trained(model: S2Drug, model_cfg: ModelConfig, folder: Path) -> Path:
    """Write ``model.safetensors`` and ``model.json`` (the shape) atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(folder / "model.safetensors", lambda p: save_file(state, str(p)))
    atomic_write_json(folder / "model.json", to_dict(model_cfg))
    return folder / "model.safetensors"


def load_trained(folder: str | Path, device: str = "cpu") -> S2Drug:
    """Load a model written by :func:`save_trained` (e.g. a training run dir)."""
    folder = Path(folder)
    if not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"{folder}: model.safetensors missing (not a finished training run?)"
        )
    cfg = from_dict(ModelConfig, json.loads((folder / "model.json").read_text()))
    cfg.weights = None  # the trained weights below include the ESM2 part
    model = build_model(cfg)
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    return model.to(device).eval()


class Trainer:
    """Runs both stages with periodic checkpoints; resumable bit for bit.

    Args:
        cfg: The training config.
        run: The run directory.
        pairs: Stage-1 pairs (None skips stage 1).
        items: Stage-2 pockets.
    """

    def __init__(
        self, cfg: TrainConfig, run: Run, pairs: PairSet | None, items: list[PocketItem]
    ) -> None:
        self.cfg, self.run, self.pairs, self.items = cfg, run, pairs, items
        self.device = resolve_device(cfg.device)
        self.model = build_model(cfg.model).to(self.device)
        if cfg.init:
            init = Path(cfg.init) / "model.safetensors"
            if not init.is_file():
                raise FileNotFoundError(f"init: {init} not found")
            self.model.load_state_dict(load_file(str(init)))
            log.info("model initialised from %s", init)
        self.log_tau = torch.nn.Parameter(
            torch.tensor(float(np.log(cfg.temperature)), device=self.device),
            requires_grad=cfg.learn_temperature,
        )
        self.graphs = GraphCache(cfg.use_3d)
        self.rng = np.random.default_rng(cfg.seed)
        self.s1_steps = cfg.stage1.steps if pairs is not None else 0
        self.total = self.s1_steps + cfg.stage2.steps

    def _optimizer(self, lr: float) -> torch.optim.Optimizer:
        params = [*self.model.parameters(), self.log_tau]
        return torch.optim.AdamW(
            [p for p in params if p.requires_grad], lr=lr, weight_decay=1e-4
        )

    def _checkpoint(self, step: int, opt: torch.optim.Optimizer) -> None:
        tensors, state = capture_training_state(self.model, opt, {"sampler": self.rng})
        tensors["log_tau"] = self.log_tau.detach()
        state["step"] = step
        save_checkpoint(self.run.checkpoint_dir, step, tensors, state)

    def fit(self, resume: bool = False) -> dict[str, Any]:
        """Train both stages; returns the last metrics of each stage."""
        start = 0
        opt = self._optimizer(
            self.cfg.stage1.lr if self.s1_steps else self.cfg.stage2.lr
        )
        if resume:
            ckpt = latest_checkpoint(self.run.checkpoint_dir)
            if ckpt is not None:
                start = int(ckpt.state["step"])
                if start >= self.s1_steps:
                    opt = self._optimizer(self.cfg.stage2.lr)
                restore_training_state(ckpt, self.model, opt, {"sampler": self.rng})
                with torch.no_grad():
                    self.log_tau.copy_(ckpt.tensors["log_tau"])
                self.run.metrics.truncate_after(start)
                log.info("resumed from step %d", start)
        last: dict[str, Any] = {}
        self.model.train()
        for step in progress(
            range(start + 1, self.total + 1), desc="train", total=self.total - start
        ):
            if step == self.s1_steps + 1 and self.s1_steps:
                opt = self._optimizer(self.cfg.stage2.lr)  # fresh for stage 2
            stage = 1 if step <= self.s1_steps else 2
            metrics = self._stage1_step() if stage == 1 else self._stage2_step()
            opt.zero_grad(set_to_none=True)
            metrics.pop("loss").backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            opt.step()
            metrics = {"stage": stage, **metrics}
            self.run.log_metrics(step, **metrics)
            last[f"stage{stage}"] = metrics
            if step % self.cfg.checkpoint_every == 0 or step == self.total:
                self._checkpoint(step, opt)
        return last

    # -- stage 1 -------------------------------------------------------------
    def _stage1_step(self) -> dict[str, Any]:
        pairs = self.pairs
        assert pairs is not None
        idx = self.rng.choice(
            len(pairs),
            size=min(self.cfg.stage1.batch_size, len(pairs)),
            replace=False,
            p=pairs.weights,
        )
        prots = [pairs.protein_ids[i] for i in idx]
        smiles = [pairs.smiles[i] for i in idx]
        max_len = self.cfg.model.max_seq_len
        seqs = []
        for p in prots:
            s = pairs.sequences[p]
            off = (
                int(self.rng.integers(0, len(s) - max_len + 1))
                if len(s) > max_len
                else 0
            )
            seqs.append(s[off : off + max_len])
        tokens = tokenize(seqs).to(self.device)
        lig = collate_graphs([self.graphs.get(s) for s in smiles]).to(self.device)
        p_emb = self.model.encode_sequences(tokens)  # (B, E)
        l_emb = self.model.encode_ligands(lig)  # (B, E)
        mask = duplicate_mask(prots, smiles)
        loss = symmetric_info_nce(p_emb, l_emb, self.log_tau.exp(), mask)
        return {"loss": loss, "loss_fc": loss.item(), "batch": len(idx)}

    # -- stage 2 -------------------------------------------------------------
    def _stage2_step(self) -> dict[str, Any]:
        s2, k = self.cfg.stage2, self.cfg.stage2.probes
        chosen = self.rng.choice(
            len(self.items),
            size=min(s2.pockets_per_batch, len(self.items)),
            replace=False,
        )
        pockets, owner, smiles, graphs = [], [], [], []
        for j, i in enumerate(chosen):
            item = self.items[i]
            pockets.append(item.pocket)
            picks = self.rng.permutation(len(item.ligands))[:k]
            for t in picks:
                owner.append(j)
                smiles.append(item.smiles[t])
                graphs.append(self.graphs.get(item.smiles[t], item.ligands[t]))
        batch = collate_pockets(pockets, self.cfg.model.max_seq_len).to(self.device)
        lig = collate_graphs(graphs).to(self.device)
        pocket_emb, beta, seq_full = self.model.pocket_states(batch)  # (P, E)
        h = self.model.ligand_features(lig)  # (N, Dl)
        l_emb = self.model.embed_ligand_features(h)  # (N, E)
        owner_t = torch.tensor(owner, device=self.device)
        keys = [pockets[o].name for o in owner]
        mask = duplicate_mask(keys, smiles)
        loss_fc = symmetric_info_nce(
            pocket_emb[owner_t], l_emb, self.log_tau.exp(), mask
        )
        out: dict[str, Any] = {
            "loss_fc": loss_fc.item(),
            "gate_mean": beta[batch.mask].mean().item(),
        }
        loss = loss_fc
        if s2.bsp_weight > 0 and seq_full is not None:
            probes = h.new_zeros(len(pockets), k, h.shape[-1])
            probe_mask = torch.zeros(
                len(pockets), k, dtype=torch.bool, device=self.device
            )
            fill = [0] * len(pockets)
            for n, o in enumerate(owner):
                probes[o, fill[o]] = h[n]
                probe_mask[o, fill[o]] = True
                fill[o] += 1
            probs = self.model.site_probabilities(
                seq_full, batch.tokens, probes, probe_mask
            )
            loss_bsp = binding_site_loss(probs, batch.site_labels, batch.site_valid)
            loss = loss + s2.bsp_weight * loss_bsp
            out["loss_bsp"] = loss_bsp.item()
        out["loss"] = loss
        return out


def run_training(
    cfg: TrainConfig, run_dir: Path | None = None, resume: bool = False
) -> Path:
    """Runner of ``screen-train`` configs: train, save the model, write results.

    Args:
        cfg: The config.
        run_dir: Existing run directory (resume) or exact directory to create.
        resume: Continue from the latest checkpoint of ``run_dir``.

    Returns:
        The run directory.
    """
    from tamis.cli_common import run_logging

    if resume and run_dir is not None:
        run = Run.open(run_dir)
        from tamis.core.runs import seed_everything

        seed_everything(run.seed)
    else:
        run = Run.create(
            cfg.out, cfg.name, cfg, cfg.seed, device=cfg.device, path=run_dir
        )
    with run_logging(run):
        pairs = stage1_pairs(cfg)
        items = stage2_items(cfg)
        trainer = Trainer(cfg, run, pairs, items)
        last = trainer.fit(resume=resume)
        save_trained(trainer.model, cfg.model, run.path)
        results = {
            "stage1_sampling": pairs.report.as_dict() if pairs else None,
            "stage1_pairs": len(pairs) if pairs else 0,
            "stage2_pockets": [it.pocket.name for it in items],
            "temperature": float(trainer.log_tau.exp()),
            "last": {k: {m: v for m, v in d.items()} for k, d in last.items()},
            "model": asdict(trainer.model.shape),
        }
        run.write_results(results)
    return run.path
