"""Collaborative-information study: co-occurrence graph, relation types, breakdowns.

Main entry points:

* :func:`cooccurrence_graph` — the global item co-occurrence graph (sparse).
* :func:`pair_distances`, :func:`pair_histogram`, :func:`shortest_path_counts` —
  bounded, batched BFS over it.
* :func:`type_samples` — relation type of each test sample, pure subsets.
* :func:`relation_shares`, :func:`stratified_accuracy` — model breakdowns.
* :func:`run_study` — all of the above on one dataset and any number of models.

Reference: X. Zhang et al., "Have We Really Understood Collaborative
Information? An Empirical Investigation", arXiv:2511.06905 (WSDM 2026).
"""

from tamis.recsys.analysis.bfs import (
    UNREACHED,
    BitsetBFS,
    distance_pass,
    pair_distances,
    pair_histogram,
    shortest_path_counts,
)
from tamis.recsys.analysis.breakdown import relation_shares, stratified_accuracy
from tamis.recsys.analysis.graph import (
    cooccurrence_graph,
    multiplicity_histogram,
    sequence_pairs,
    training_items,
)
from tamis.recsys.analysis.relations import (
    SampleTypes,
    distance_codes,
    flatten_input_pairs,
    relation_labels,
    type_samples,
)
from tamis.recsys.analysis.study import (
    CollabData,
    ModelPredictions,
    StudySettings,
    run_study,
)
from tamis.recsys.analysis.synthetic import planted_cluster_sequences

__all__ = [
    "UNREACHED",
    "BitsetBFS",
    "CollabData",
    "ModelPredictions",
    "SampleTypes",
    "StudySettings",
    "cooccurrence_graph",
    "distance_codes",
    "distance_pass",
    "flatten_input_pairs",
    "multiplicity_histogram",
    "pair_distances",
    "pair_histogram",
    "planted_cluster_sequences",
    "relation_labels",
    "relation_shares",
    "run_study",
    "sequence_pairs",
    "shortest_path_counts",
    "stratified_accuracy",
    "training_items",
    "type_samples",
]
