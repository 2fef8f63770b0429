"""Task-vector merging: linear, task arithmetic, TIES, DARE, Sens-Merging.

Importing this package registers every merge method in :data:`MERGE_METHODS`.
"""

from tamis.llm.merging import dare, linear, task_arithmetic, ties  # noqa: F401
from tamis.llm.merging.base import MERGE_METHODS, MergeMethod, MergeParams
from tamis.llm.merging.coefficients import LayerCoefficients, parameter_group
from tamis.llm.merging.engine import (
    MergePlan,
    merge_state_dicts,
    merge_tensor,
    run_merge,
)

__all__ = [
    "MERGE_METHODS",
    "LayerCoefficients",
    "MergeMethod",
    "MergeParams",
    "MergePlan",
    "merge_state_dicts",
    "merge_tensor",
    "parameter_group",
    "run_merge",
]
