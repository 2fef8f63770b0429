"""Bilateral data sampling (BDS) of S²Drug for stage-1 activity pairs.

Protein side: homology clusters at 40% identity (greedy clustering with an
alignment-free identity estimate from diagonal 3-mer hits, or with semi-global
alignment as an option; MMseqs2 is not assumed) with
sampling probability ``1 / |C|^alpha`` per protein, and redundancy removal that
keeps one representative per near-identical group (mutants, isoforms) — the one
with the most distinct ligands. Ligand side: drop pairs whose repeated
measurements disagree (std of the log-affinity >= delta), frequent hitters that
bind more than ``max_partners`` proteins, and PAINS compounds (RDKit's filter
catalogue). Each step is a switch, and :class:`SamplingReport` counts what
each removed. Reference: He et al., arXiv:2511.07006, section on BDS.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field

import numpy as np
from rdkit import Chem, RDLogger
from rdkit.Chem.FilterCatalog import FilterCatalog, FilterCatalogParams

from tamis.screening.data.activity import ActivityTable
from tamis.screening.data.align import sequence_identity

__all__ = [
    "SamplingOptions",
    "SamplingReport",
    "PairSet",
    "kmer_profile",
    "kmer_similarity",
    "greedy_clusters",
    "cluster_weights",
    "noisy_pairs",
    "pains_mask",
    "build_pairs",
    "homologous_to",
    "diagonal_hits",
    "estimate_identity",
]

log = logging.getLogger(__name__)


@dataclass
class SamplingOptions:
    """Switches and thresholds of the sampling strategy (see module docstring)."""

    homology_weighting: bool = True
    identity: float = 0.4
    alpha: float = 0.5
    redundancy_removal: bool = True
    redundancy_identity: float = 0.95
    noise_filter: bool = True
    noise_delta: float = 1.0
    promiscuity_filter: bool = True
    max_partners: int = 20
    pains_filter: bool = True
    positive_threshold: float = 7.0
    cluster_method: str = "kmer"


@dataclass
class SamplingReport:
    """Counts of what each step of the sampling removed or changed."""

    measurements: int = 0
    noisy_removed: int = 0
    positive_pairs: int = 0
    redundant_proteins_removed: int = 0
    redundant_pairs_removed: int = 0
    promiscuous_ligands: int = 0
    promiscuous_pairs_removed: int = 0
    pains_ligands: int = 0
    pains_pairs_removed: int = 0
    excluded_pairs: int = 0
    final_pairs: int = 0
    clusters: int = 0
    largest_cluster: int = 0

    def as_dict(self) -> dict[str, int]:
        """Plain dict for logs and results."""
        return asdict(self)


@dataclass
class PairSet:
    """Positive ligand-protein pairs with per-pair sampling weights.

    Attributes:
        smiles: (P,) ligand SMILES.
        protein_ids: (P,) protein identifiers.
        sequences: Protein id -> sequence.
        weights: (P,) sampling probability of each pair (sums to 1).
        report: What the sampling did.
    """

    smiles: list[str]
    protein_ids: list[str]
    sequences: dict[str, str]
    weights: np.ndarray
    report: SamplingReport = field(default_factory=SamplingReport)

    def __len__(self) -> int:
        return len(self.smiles)


def kmer_profile(seq: str, k: int = 3) -> set[str]:
    """Set of the sequence's k-mers."""
    return {seq[i : i + k] for i in range(len(seq) - k + 1)}


def kmer_similarity(a: set[str], b: set[str]) -> float:
    """Containment of the smaller k-mer set in the larger (0..1)."""
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


def diagonal_hits(a: str, b: str, k: int = 3, band: int = 21) -> int:
    """Most shared k-mers falling in one band of alignment diagonals.

    A FASTA-style prefilter: homologous regions put many identical k-mers on
    nearly the same diagonal ``j - i``; chance matches spread over all of them.
    """
    if len(a) < k or len(b) < k:
        return 0
    where: dict[str, list[int]] = defaultdict(list)
    for j in range(len(b) - k + 1):
        where[b[j : j + k]].append(j)
    diags = [
        j - i + len(a)
        for i in range(len(a) - k + 1)
        for j in where.get(a[i : i + k], ())
    ]
    if not diags:
        return 0
    counts = np.bincount(np.asarray(diags), minlength=len(a) + len(b) + 1)
    return int(np.convolve(counts, np.ones(band, dtype=np.int64), "valid").max())


def _similar(
    a: str, b: str, pa: set[str], pb: set[str], identity: float, max_len: int = 1200
) -> bool:
    """Identity >= threshold: k-mer screens first, alignment for the unclear band."""
    if kmer_similarity(pa, pb) >= 0.8:
        return True  # near-identical k-mer content
    a, b = a[:max_len], b[:max_len]
    # Chance hits per band grow with length (about L * band / 20^3).
    expected = min(len(a), len(b)) * 21 / 8000
    if diagonal_hits(a, b) < max(8.0, 3.0 * expected):
        return False  # no diagonal rich in identical 3-mers: far below 40%
    return sequence_identity(a, b) >= identity


def estimate_identity(a: str, b: str) -> float:
    """Alignment-free identity estimate from diagonal 3-mer hits.

    If aligned letters are identical with probability p, a 3-mer is conserved
    with probability about p^3, so ``p ~ (hits / L)^(1/3)`` with L the shorter
    length. Indels longer than the band make this an underestimate.
    """
    n = min(len(a), len(b)) - 2
    if n <= 0:
        return 0.0
    return min(1.0, diagonal_hits(a, b) / n) ** (1 / 3)


def greedy_clusters(
    sequences: dict[str, str], identity: float = 0.4, method: str = "kmer"
) -> dict[str, int]:
    """Greedy clustering: longest sequence first, join the first matching centre.

    Args:
        sequences: Protein id -> sequence.
        identity: Identity threshold of cluster membership.
        method: ``kmer`` (alignment-free estimate, fast) or ``align`` (k-mer
            screens, then semi-global alignment identity).

    Returns:
        Protein id -> cluster index.
    """
    if method not in ("kmer", "align"):
        raise ValueError(f"method: got {method!r}, expected kmer or align")
    ids = sorted(sequences, key=lambda p: (-len(sequences[p]), p))
    profiles = {p: kmer_profile(sequences[p]) for p in ids}
    centres: list[str] = []
    out: dict[str, int] = {}
    for pid in ids:
        for c_idx, centre in enumerate(centres):
            a, b = sequences[pid], sequences[centre]
            if method == "kmer" and identity >= 0.9:
                # Near-identical (mutants, isoforms): shared 3-mer content.
                same = kmer_similarity(profiles[pid], profiles[centre]) >= identity
            elif method == "kmer":
                same = estimate_identity(a, b) >= identity
            else:
                same = _similar(a, b, profiles[pid], profiles[centre], identity)
            if same:
                out[pid] = c_idx
                break
        else:
            out[pid] = len(centres)
            centres.append(pid)
    return out


def homologous_to(
    sequences: dict[str, str], references: list[str], identity: float = 0.4
) -> set[str]:
    """Protein ids whose sequence reaches ``identity`` to any reference sequence."""
    ref_profiles = [kmer_profile(r) for r in references]
    hits = set()
    for pid, seq in sequences.items():
        prof = kmer_profile(seq)
        for ref, rp in zip(references, ref_profiles, strict=True):
            if _similar(seq, ref, prof, rp, identity):
                hits.add(pid)
                break
    return hits


def cluster_weights(clusters: dict[str, int], alpha: float = 0.5) -> dict[str, float]:
    """Protein sampling weight ``1 / |C|^alpha`` of its homology cluster."""
    sizes = Counter(clusters.values())
    return {p: 1.0 / sizes[c] ** alpha for p, c in clusters.items()}


def noisy_pairs(table: ActivityTable, delta: float = 1.0) -> set[tuple[str, str]]:
    """(ligand, protein) pairs whose repeated log-affinities have std >= delta."""
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for lig, prot, a in zip(
        table.ligand_ids, table.protein_ids, table.affinity, strict=True
    ):
        groups[(lig, prot)].append(float(a))
    return {k for k, v in groups.items() if len(v) > 1 and np.std(v) >= delta}


def pains_mask(smiles: list[str]) -> np.ndarray:
    """(N,) True for molecules matching RDKit's PAINS (A, B, C) catalogue."""
    params = FilterCatalogParams()
    params.AddCatalog(FilterCatalogParams.FilterCatalogs.PAINS)
    catalog = FilterCatalog(params)
    out = np.zeros(len(smiles), dtype=bool)
    RDLogger.DisableLog("rdApp.*")
    try:
        for i, s in enumerate(smiles):
            mol = Chem.MolFromSmiles(s)
            out[i] = mol is not None and catalog.HasMatch(mol)
    finally:
        RDLogger.EnableLog("rdApp.*")
    return out


def build_pairs(
    table: ActivityTable,
    options: SamplingOptions,
    exclude_proteins: set[str] | None = None,
) -> PairSet:
    """Turn an activity table into weighted positive pairs with the BDS steps.

    Args:
        table: Measurements.
        options: Switches and thresholds.
        exclude_proteins: Protein ids removed before anything else (homologs of
            the test targets).

    Returns:
        The :class:`PairSet`; every switch's effect is counted in its report.
    """
    rep = SamplingReport(measurements=len(table))
    exclude = exclude_proteins or set()
    noisy = noisy_pairs(table, options.noise_delta) if options.noise_filter else set()

    # Average repeated measurements; keep positive, clean pairs.
    sums: dict[tuple[str, str], list[float]] = defaultdict(list)
    smiles_of: dict[str, str] = {}
    for s, lig, prot, a in zip(
        table.smiles, table.ligand_ids, table.protein_ids, table.affinity, strict=True
    ):
        sums[(lig, prot)].append(float(a))
        smiles_of[lig] = s
    pairs = []
    for key, vals in sums.items():
        if key in noisy:
            rep.noisy_removed += 1  # inconsistent repeats: neither pos. nor neg.
            continue
        if float(np.mean(vals)) < options.positive_threshold:
            continue
        rep.positive_pairs += 1
        if key[1] in exclude:
            rep.excluded_pairs += 1
        else:
            pairs.append(key)

    # Protein redundancy: one representative per near-identical group.
    if options.redundancy_removal:
        prots = sorted({p for _, p in pairs})
        groups = greedy_clusters(
            {p: table.sequences[p] for p in prots},
            options.redundancy_identity,
            options.cluster_method,
        )
        n_ligs = Counter(p for _, p in pairs)
        best: dict[int, str] = {}
        for p in prots:
            g = groups[p]
            if g not in best or n_ligs[p] > n_ligs[best[g]]:
                best[g] = p
        keep = set(best.values())
        rep.redundant_proteins_removed = len(prots) - len(keep)
        before = len(pairs)
        pairs = [(lig, p) for lig, p in pairs if p in keep]
        rep.redundant_pairs_removed = before - len(pairs)

    # Ligand side: frequent hitters and PAINS.
    if options.promiscuity_filter:
        partners = Counter(lig for lig, _ in pairs)
        hitters = {lig for lig, n in partners.items() if n > options.max_partners}
        rep.promiscuous_ligands = len(hitters)
        before = len(pairs)
        pairs = [(lig, p) for lig, p in pairs if lig not in hitters]
        rep.promiscuous_pairs_removed = before - len(pairs)
    if options.pains_filter:
        ligs = sorted({lig for lig, _ in pairs})
        flagged = {
            lig
            for lig, m in zip(
                ligs, pains_mask([smiles_of[x] for x in ligs]), strict=True
            )
            if m
        }
        rep.pains_ligands = len(flagged)
        before = len(pairs)
        pairs = [(lig, p) for lig, p in pairs if lig not in flagged]
        rep.pains_pairs_removed = before - len(pairs)

    # Protein-side weights from homology clusters.
    prots = sorted({p for _, p in pairs})
    if options.homology_weighting and prots:
        clusters = greedy_clusters(
            {p: table.sequences[p] for p in prots},
            options.identity,
            options.cluster_method,
        )
        prot_w = cluster_weights(clusters, options.alpha)
        sizes = Counter(clusters.values())
        rep.clusters, rep.largest_cluster = len(sizes), max(sizes.values())
    else:
        prot_w = dict.fromkeys(prots, 1.0)
    # A protein's weight is shared by its pairs, so proteins (not pairs) are
    # drawn in proportion to 1/|C|^alpha; ligands within a protein are uniform.
    per_prot = Counter(p for _, p in pairs)
    w = np.array([prot_w[p] / per_prot[p] for _, p in pairs], dtype=np.float64)
    rep.final_pairs = len(pairs)
    if not pairs:
        raise ValueError(
            f"{table.source}: no positive pair left after sampling "
            f"(threshold {options.positive_threshold}); counts: {rep.as_dict()}"
        )
    log.info("stage-1 sampling: %s", rep.as_dict())
    return PairSet(
        [smiles_of[lig] for lig, _ in pairs],
        [p for _, p in pairs],
        {p: table.sequences[p] for p in prots},
        w / w.sum(),
        rep,
    )
