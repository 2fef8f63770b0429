"""Shared fixtures of the recommendation tests: small planted data."""

from __future__ import annotations

import pytest

from tamis.core.progress import set_progress_enabled
from tamis.recsys.data import SequentialSplit, leave_one_out, planted_sequences


@pytest.fixture(autouse=True)
def _quiet_progress() -> None:
    set_progress_enabled(False)


@pytest.fixture(scope="session")
def planted_split() -> SequentialSplit:
    """120 users on a ring of 30 items; next item is usually last + 1."""
    return leave_one_out(planted_sequences(120, 30, follow=0.9, seed=1))
