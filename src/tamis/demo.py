"""``tamis demo``: each domain's demo, end to end on small generated data."""

from __future__ import annotations

import importlib
import logging
import time
import traceback
from pathlib import Path
from typing import Any

from tamis.core.io import atomic_write_json

log = logging.getLogger(__name__)

#: (domain, module with ``run_demo(out: Path) -> dict[str, str]``).
DEMOS = (
    ("rec", "tamis.recsys.demo"),
    ("rec-collab", "tamis.recsys.analysis.demo"),
    ("rec-sracl", "tamis.recsys.methods.demo"),
    ("llm", "tamis.llm.demo"),
    ("screen", "tamis.screening.demo"),
)


def run_demo(out: Path, only: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Run each domain's demo under ``out`` and write ``demo-summary.json``.

    A domain whose demo fails is reported as failed with its traceback in the log;
    the other domains still run.

    Args:
        out: Folder for the run directories.
        only: Domains to run (default: all).

    Returns:
        Domain -> {status, seconds, outputs}.
    """
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {}
    for domain, module in DEMOS:
        if only and domain not in only:
            continue
        start = time.perf_counter()
        log.info("demo: %s", domain)
        try:
            demo_module = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name is None or not module.startswith(err.name):
                raise
            log.warning("demo %s skipped: %s is not installed", domain, module)
            summary[domain] = {"status": "skipped", "seconds": 0.0, "outputs": {}}
            continue
        try:
            outputs = demo_module.run_demo(out / domain)
            status = "ok"
        except Exception:
            log.error("demo %s failed:\n%s", domain, traceback.format_exc())
            outputs, status = {}, "failed"
        summary[domain] = {
            "status": status,
            "seconds": time.perf_counter() - start,
            "outputs": {k: str(v) for k, v in outputs.items()},
        }
        atomic_write_json(out / "demo-summary.json", summary)
    return summary
