"""Training methods that plug into the recsys trainer as objectives.

Each method lives in its own module; this package registers them in
:data:`tamis.recsys.objectives.OBJECTIVES` under the names used as ``method:``
in a ``rec-train`` config.
"""

from __future__ import annotations

from tamis.recsys.methods.cl4srec import CL4SRecObjective
from tamis.recsys.methods.sracl import SRACLObjective
from tamis.recsys.objectives import OBJECTIVES

__all__ = ["CL4SRecObjective", "SRACLObjective"]

OBJECTIVES.add("cl4srec", CL4SRecObjective, "CL4SRec", paper="arXiv:2010.14395")
OBJECTIVES.add("sra-cl", SRACLObjective, "SRA-CL", paper="arXiv:2503.04162")
