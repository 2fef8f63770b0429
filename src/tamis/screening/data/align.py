"""Global sequence alignment (Needleman-Wunsch) vectorised over rows.

Used to map structure residues onto a full sequence when residue numbering is
broken, and to estimate pairwise sequence identity for homology clustering and
target exclusion. Linear gap penalty; match/mismatch scoring (no substitution
matrix), which is enough to place observed residues on their own sequence.
"""

from __future__ import annotations

import numpy as np

__all__ = ["global_align", "map_positions", "sequence_identity"]


def _encode(seq: str) -> np.ndarray:
    return np.frombuffer(seq.upper().encode("ascii", "replace"), dtype=np.uint8)


def global_align(
    a: str, b: str, match: float = 2.0, mismatch: float = -1.0, gap: float = -2.0
) -> tuple[np.ndarray, float]:
    """Align ``a`` to ``b`` globally.

    Each row of the dynamic-programming table is computed with NumPy: the
    diagonal and vertical moves are element-wise, and the horizontal move (a run
    of gaps in ``a``) is a running maximum of ``H - j * gap``.

    Args:
        a: First sequence (length m).
        b: Second sequence (length n).
        match: Score of identical letters.
        mismatch: Score of different letters.
        gap: Score of one gap position (negative).

    Returns:
        ``(mapping, score)``: (m,) int array giving for each position of ``a`` its
        aligned position in ``b`` or -1 for a gap; and the alignment score.
    """
    if gap >= 0:
        raise ValueError(f"gap: got {gap}, expected a negative penalty")
    x, y = _encode(a), _encode(b)
    m, n = len(x), len(y)
    if m == 0 or n == 0:
        return np.full(m, -1, dtype=np.int64), gap * (m + n)
    cols = np.arange(n + 1)
    prev = cols * gap  # row 0: (n + 1,)
    moves = np.zeros((m + 1, n + 1), dtype=np.int8)  # 0 diag, 1 up, 2 left
    moves[0, 1:] = 2
    for i in range(1, m + 1):
        sub = np.where(y == x[i - 1], match, mismatch)  # (n,)
        row = np.empty(n + 1)
        row[0] = i * gap
        diag = prev[:-1] + sub
        up = prev[1:] + gap
        best = np.maximum(diag, up)
        move = np.where(diag >= up, 0, 1).astype(np.int8)
        row[1:] = best
        # Horizontal gaps: row[j] = max_k<=j (row[k] + (j - k) * gap).
        shifted = row - cols * gap
        running = np.maximum.accumulate(shifted) + cols * gap
        left = running > row + 1e-12
        row = np.where(left, running, row)
        move = np.where(left[1:], 2, move)
        moves[i, 1:] = move
        moves[i, 0] = 1
        prev = row
    score = float(prev[-1])

    # Trace back from the bottom-right corner.
    mapping = np.full(m, -1, dtype=np.int64)
    i, j = m, n
    while i > 0 and j > 0:
        mv = moves[i, j]
        if mv == 0:
            mapping[i - 1] = j - 1
            i, j = i - 1, j - 1
        elif mv == 1:
            i -= 1
        else:
            j -= 1
    return mapping, score


def map_positions(observed: str, full: str) -> np.ndarray:
    """Positions in ``full`` of each residue of ``observed`` (-1 if unplaced).

    Only identical letters are kept as mapped; a mismatch aligned by chance is -1.
    """
    mapping, _ = global_align(observed, full)
    obs, ful = _encode(observed), _encode(full)
    ok = mapping >= 0
    same = np.zeros_like(ok)
    same[ok] = obs[ok] == ful[mapping[ok]]
    return np.where(same, mapping, -1)


def sequence_identity(a: str, b: str) -> float:
    """Identical aligned positions divided by the shorter sequence's length."""
    if not a or not b:
        return 0.0
    mapping, _ = global_align(a, b)
    ok = mapping >= 0
    same = int((_encode(a)[ok] == _encode(b)[mapping[ok]]).sum())
    return same / min(len(a), len(b))
