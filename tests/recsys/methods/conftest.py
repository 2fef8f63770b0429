"""Shared tiny data for the SRA-CL / CL4SRec tests."""

from __future__ import annotations

import pytest

from tamis.recsys.data.splits import leave_one_out
from tamis.recsys.semantic.synthetic import topic_catalogue


@pytest.fixture(scope="session")
def topics():
    """(data, topic-of-item, leave-one-out split) of a small topic catalogue."""
    data, topic = topic_catalogue(n_users=60, n_topics=4, items_per_topic=10, seed=0)
    return data, topic, leave_one_out(data)


@pytest.fixture(scope="session")
def small():
    """A leave-one-out split of a very small topic catalogue (fast training)."""
    data, _ = topic_catalogue(
        n_users=24, n_topics=3, items_per_topic=6, min_len=5, max_len=8, seed=1
    )
    return leave_one_out(data)
