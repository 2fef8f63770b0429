"""Readers, the dataset type and filters on tiny hand-written files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tamis.recsys.data import (
    InteractionData,
    deduplicate,
    kcore,
    min_length,
    read_atomic,
    read_pairs,
    read_presplit,
    read_sequences,
    read_sessions,
)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_sequences_give_dense_ids_in_order_and_both_maps(tmp_path: Path) -> None:
    f = _write(tmp_path / "s.txt", "u1 a b c\nu2 b d\n")
    attrs = _write(tmp_path / "a.json", json.dumps({"a": [1], "d": [2, 3], "z": [9]}))
    data = read_sequences(f, attrs)
    assert (data.n_users, data.n_items, data.n_interactions) == (2, 4, 5)
    assert list(data.item_ids) == ["a", "b", "c", "d"]
    assert data.item_index["d"] == 3 and data.user_index["u2"] == 1
    assert data.sequence(0).tolist() == [0, 1, 2]
    assert data.sequence(1).tolist() == [1, 3]
    # Features are aligned with dense ids; unknown side-table ids are counted.
    assert data.item_features["attributes"] == [["1"], None, None, ["2", "3"]]
    assert data.report["attributes.unknown_ids"] == 1
    assert data.report["attributes.missing"] == 2


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    f = _write(tmp_path / "p.txt", "1 2\n1 3\n7\n")
    with pytest.raises(ValueError, match=r"p\.txt:3: expected 'user item'"):
        read_pairs(f)
    g = _write(tmp_path / "s.txt", "1 2 3\nlonely\n")
    with pytest.raises(ValueError, match=r"s\.txt:2:"):
        read_sequences(g)


def test_pairs_with_timestamps_are_sorted_by_time(tmp_path: Path) -> None:
    f = _write(tmp_path / "p.txt", "u x 30\nu y 10\nu z 20\n")
    data = read_pairs(f)
    assert [data.item_ids[i] for i in data.sequence(0)] == ["y", "z", "x"]


def test_atomic_files_with_item_features(tmp_path: Path) -> None:
    _write(
        tmp_path / "t.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "1\t10\t4\t300\n1\t11\t5\t100\n2\t10\t3\t200\n",
    )
    _write(
        tmp_path / "t.item",
        "item_id:token\ttitle:token_seq\tclass:token_seq\n10\tThe Film\tA B\n"
        "99\tGhost\tC\n",
    )
    data = read_atomic(tmp_path, "t")
    assert [data.item_ids[i] for i in data.sequence(0)] == ["11", "10"]
    assert data.rating.tolist() == [5.0, 4.0, 3.0]
    assert data.item_features["class"][data.item_index["10"]] == ["A", "B"]
    assert data.item_features["class"][data.item_index["11"]] is None
    assert data.report["class.unknown_ids"] == 1


def test_atomic_bad_number_and_bad_header(tmp_path: Path) -> None:
    _write(
        tmp_path / "b.inter", "user_id:token\titem_id:token\trating:float\n1\t2\tx\n"
    )
    with pytest.raises(ValueError, match=r"b\.inter:2: field 'rating'"):
        read_atomic(tmp_path, "b")
    _write(tmp_path / "c.inter", "user_id\titem_id:token\n1\t2\n")
    with pytest.raises(ValueError, match=r"c\.inter:1: header cell"):
        read_atomic(tmp_path, "c")


def test_presplit_rebuilds_sequences_and_joins_text(tmp_path: Path) -> None:
    head = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
    _write(tmp_path / "S.train.inter", head + "0\t0\t1\n")
    _write(tmp_path / "S.valid.inter", head + "0\t0 1\t2\n")
    _write(tmp_path / "S.test.inter", head + "0\t0 1 2\t3\n")
    _write(tmp_path / "S.item2index", "A\t0\nB\t1\nC\t2\nD\t3\n")
    _write(tmp_path / "S.text", "item_id:token\ttext:token_seq\nA\tapple\nD\tdate\n")
    data = read_presplit(tmp_path, "S")
    assert [data.item_ids[i] for i in data.sequence(0)] == ["0", "1", "2", "3"]
    assert data.item_features["text"][data.item_index["3"]] == "date"
    _write(tmp_path / "S.test.inter", head + "0\t0 1 9\t3\n")
    with pytest.raises(ValueError, match="validation target"):
        read_presplit(tmp_path, "S")


def test_sessions_join_side_table_and_count_unknown(tmp_path: Path) -> None:
    log = _write(
        tmp_path / "v.csv",
        "session_id;user_id;item_id;timeframe\n1;NA;5;20\n1;NA;6;10\n2;NA;5;1\n",
    )
    table = _write(tmp_path / "c.csv", "itemId;categoryId\n5;c1\n6;c2\n7;c3\n")
    data = read_sessions(log, item_table=table)
    assert [data.item_ids[i] for i in data.sequence(0)] == ["6", "5"]
    assert data.item_features["categoryId"][data.item_index["5"]] == ["c1"]
    assert data.report["categoryId.unknown_ids"] == 1
    bad = _write(tmp_path / "w.csv", "session_id;item_id;timeframe\n1;5\n")
    with pytest.raises(ValueError, match=r"w\.csv:2: expected 3 fields"):
        read_sessions(bad)


def _toy() -> InteractionData:
    users = ["a"] * 3 + ["b"] * 3 + ["c"] * 1
    items = ["x", "x", "y", "x", "y", "z", "y"]
    return InteractionData.from_raw(users, items)


def test_dedup_modes() -> None:
    data = _toy()
    assert deduplicate(data, "consecutive").n_interactions == 6
    first = deduplicate(data, "first")
    assert first.sequence(0).tolist() == [0, 1]
    assert first.report["filter.dedup.removed"] == 1


def test_kcore_is_iterative_and_reindexes_features() -> None:
    users = ["a", "a", "b", "b", "c"]
    items = ["x", "y", "x", "y", "z"]
    feats = {"t": {"x": "X", "y": "Y", "z": "Z"}}
    data = InteractionData.from_raw(users, items, item_features=feats)
    core = kcore(data, 2)
    assert (core.n_users, core.n_items) == (2, 2)
    assert core.item_features["t"] == ["X", "Y"]
    assert [core.item_ids[i] for i in range(2)] == ["x", "y"]


def test_filter_that_empties_data_names_itself() -> None:
    with pytest.raises(ValueError, match="min_length=10"):
        min_length(_toy(), 10)
    with pytest.raises(ValueError, match="kcore=5"):
        kcore(_toy(), 5)


def test_subset_keeps_raw_ids_consistent() -> None:
    data = _toy()
    sub = data.subset(data.user != 0)
    for u in range(sub.n_users):
        raw = [sub.item_ids[i] for i in sub.sequence(u)]
        orig = data.user_index[sub.user_ids[u]]
        assert raw == [data.item_ids[i] for i in data.sequence(orig)]
    assert np.all(np.diff(sub.user) >= 0)
