"""Generated skills for tiny-model experiments: arithmetic, string reversal, recall.

Three skills that a byte-level model learns in seconds on a CPU, standing in for
math, code-like and knowledge tasks:

- ``add``: ``"17+25="`` -> ``"42"`` (operands below 50);
- ``reverse``: ``"rev:cabd="`` -> ``"dbac"`` (3 to 6 letters from a-h);
- ``recall``: ``"key:k07="`` -> a fixed random 3-letter value from a table.

Train, validation and test examples of ``add`` and ``reverse`` are disjoint;
``recall`` tests the memorised table itself (a knowledge probe).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from tamis.llm.tasks import Example, Task

__all__ = ["SKILLS", "skill_tasks"]

SKILLS = ("add", "reverse", "recall")


def _add(rng: random.Random) -> Iterator[tuple[str, str]]:
    pairs = [(a, b) for a in range(50) for b in range(50)]
    rng.shuffle(pairs)
    for a, b in pairs:
        yield f"{a}+{b}=", str(a + b)


def _reverse(rng: random.Random) -> Iterator[tuple[str, str]]:
    seen: set[str] = set()
    while True:
        word = "".join(rng.choice("abcdefgh") for _ in range(rng.randint(3, 6)))
        if word not in seen:
            seen.add(word)
            yield f"rev:{word}=", word[::-1]


def _recall_table(seed: int, size: int) -> list[tuple[str, str]]:
    rng = random.Random(seed * 7919 + 1)
    return [
        (f"key:k{i:02d}=", "".join(rng.choice("pqrstuvwxyz") for _ in range(3)))
        for i in range(size)
    ]


def skill_tasks(
    seed: int = 0, n_train: int = 1000, n_val: int = 64, n_test: int = 128
) -> dict[str, dict[str, Task]]:
    """Train / val / test tasks of every skill, scored by exact match.

    Args:
        seed: Seed of the generated data.
        n_train: Training examples per skill (recall repeats its table).
        n_val: Validation examples per skill.
        n_test: Test examples per skill (recall: at most the table size).

    Returns:
        skill -> {"train", "val", "test"} -> Task.
    """
    rng = random.Random(seed)
    out: dict[str, dict[str, Task]] = {}
    for skill in ("add", "reverse"):
        gen = _add(rng) if skill == "add" else _reverse(rng)
        pairs = [next(gen) for _ in range(n_train + n_val + n_test)]
        splits = {
            "test": pairs[:n_test],
            "val": pairs[n_test : n_test + n_val],
            "train": pairs[n_test + n_val :],
        }
        out[skill] = {
            name: Task(skill, "exact_match", [Example(p, a, a) for p, a in rows])
            for name, rows in splits.items()
        }
    table = _recall_table(seed, 48)
    examples = [Example(p, a, a) for p, a in table]
    out["recall"] = {
        "train": Task(
            "recall", "exact_match", examples * max(1, n_train // len(table))
        ),
        "val": Task("recall", "exact_match", examples[:n_val]),
        "test": Task("recall", "exact_match", examples[:n_test]),
    }
    return out
