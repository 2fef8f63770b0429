"""The ``rec-collab`` config kind: one collaborative-information study."""

from __future__ import annotations

from dataclasses import dataclass

from tamis.core.config import param, register_config
from tamis.recsys.analysis.study import StudySettings
from tamis.recsys.config import DataConfig, SplitConfig

__all__ = ["CollabConfig"]


@register_config("rec-collab", runner="tamis.recsys.analysis.run:run_collab")
@dataclass
class CollabConfig:
    """A collaborative-information study of one dataset and some model runs."""

    name: str = param("collab", "run name (prefix of the run directory)")
    out: str = param("runs/collab", "parent folder of run directories")
    seed: int = param(0, "seed of the run and of generated data")
    data: DataConfig = param(factory=DataConfig, help="data source")
    split: SplitConfig = param(factory=SplitConfig, help="split rule")
    study: StudySettings = param(factory=StudySettings, help="study settings")
    runs: list[str] = param(
        factory=list, help="rec-train run directories whose models are broken down"
    )
    report: bool = param(True, "write report.html next to results.json")

    def validate(self) -> None:
        """The list cut-offs must fit the lists the models return."""
        if not self.study.ks or min(self.study.ks) < 1:
            raise ValueError(f"study.ks: got {self.study.ks}, expected cut-offs >= 1")
