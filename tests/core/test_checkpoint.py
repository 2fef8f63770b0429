"""Checkpoints: atomic replacement, integrity checks, bit-exact resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tamis.core.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)

TOY = Path(__file__).with_name("toy_train.py")
STEPS = 30


def _launch(run_dir: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, str(TOY), str(run_dir), str(STEPS), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _finish(run_dir: Path, *extra: str) -> dict[str, torch.Tensor]:
    proc = _launch(run_dir, *extra)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert out.strip().endswith("done")
    return load_file(str(run_dir / "final.safetensors"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    return _finish(tmp_path_factory.mktemp("ref") / "run")


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [0, 7, 18, STEPS - 2])
def test_sigkill_then_resume_matches_uninterrupted_run(
    tmp_path: Path, reference: dict[str, torch.Tensor], kill_after: int
) -> None:
    run_dir = tmp_path / "run"
    proc = _launch(run_dir)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == f"step {kill_after}":
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / "final.safetensors").exists()

    final = _finish(run_dir, "--resume")
    assert final.keys() == reference.keys()
    for name, tensor in reference.items():
        assert torch.equal(final[name], tensor), name
    steps = [json.loads(x)["step"] for x in (run_dir / "metrics.jsonl").open()]
    assert steps == list(range(STEPS)), "metrics.jsonl has each step exactly once"


@pytest.mark.slow
def test_kill_at_arbitrary_moments_never_leaves_a_broken_checkpoint(
    tmp_path: Path, reference: dict[str, torch.Tensor]
) -> None:
    # Kills land at arbitrary instants (inside saves too); each resume must find an
    # intact checkpoint and the last resume must still end at the reference weights.
    run_dir = tmp_path / "run"
    proc = _launch(run_dir)
    for delay in (1.2, 0.35, 0.5, 0.25):
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        if (run_dir / "run.json").exists():
            for ckpt_dir in (run_dir / "checkpoints").glob("ckpt-*"):
                load_checkpoint(ckpt_dir)  # raises if any visible one is broken
        proc = (
            _launch(run_dir, "--resume")
            if (run_dir / "run.json").exists()
            else (_launch(run_dir))
        )
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    final = load_file(str(run_dir / "final.safetensors"))
    for name, tensor in reference.items():
        assert torch.equal(final[name], tensor), name


def _two_checkpoints(tmp_path: Path) -> Path:
    for step in (1, 2):
        save_checkpoint(
            tmp_path, step, {"w": torch.full((4, 4), float(step))}, {"step_note": step}
        )
    return tmp_path


def test_truncated_checkpoint_is_refused_and_previous_one_used(tmp_path: Path) -> None:
    _two_checkpoints(tmp_path)
    newest = tmp_path / "ckpt-000000002" / "tensors.safetensors"
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(newest.parent)
    ckpt = latest_checkpoint(tmp_path)
    assert ckpt is not None and ckpt.step == 1
    assert torch.equal(ckpt.tensors["w"], torch.ones(4, 4))
    assert ckpt.state == {"step_note": 1}


def test_tampered_checkpoint_is_refused(tmp_path: Path) -> None:
    _two_checkpoints(tmp_path)
    newest = tmp_path / "ckpt-000000002" / "tensors.safetensors"
    data = bytearray(newest.read_bytes())
    data[-1] ^= 0xFF  # same size, one bit pattern changed
    newest.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_checkpoint(newest.parent)
    assert latest_checkpoint(tmp_path).step == 1


def test_corrupt_state_file_is_refused(tmp_path: Path) -> None:
    _two_checkpoints(tmp_path)
    (tmp_path / "ckpt-000000002" / "state.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt state file"):
        load_checkpoint(tmp_path / "ckpt-000000002")
    assert latest_checkpoint(tmp_path).step == 1


def test_keep_prunes_old_checkpoints_and_no_temporaries_remain(tmp_path: Path) -> None:
    for step in range(5):
        save_checkpoint(tmp_path, step, {"w": torch.zeros(2)}, keep=2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["ckpt-000000003", "ckpt-000000004", "latest"]
    assert (tmp_path / "latest").read_text().strip() == "ckpt-000000004"


def test_empty_directory_has_no_checkpoint(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path) is None
    assert latest_checkpoint(tmp_path / "missing") is None
