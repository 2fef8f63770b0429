"""Run every benchmark script in this folder with the same ``--data-dir``.

Each benchmark prints its figures and writes JSON under ``benchmarks/results/``.
Usage: ``python benchmarks/run_all.py --data-dir ../shared/data [--only NAME ...]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SKIP = {"run_all.py"}


def main() -> int:
    """Run the benchmarks one after another; return non-zero if any failed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--data-dir", type=Path, default=HERE.parent / ".." / "shared" / "data"
    )
    parser.add_argument("--only", nargs="*", default=None, help="benchmark names")
    args = parser.parse_args()
    if not args.data_dir.is_dir():
        parser.error(f"--data-dir {args.data_dir}: no such folder")

    failed = []
    scripts = sorted(p for p in HERE.glob("*.py") if p.name not in SKIP)
    for script in scripts:
        if args.only and script.stem not in args.only:
            continue
        start = time.perf_counter()
        cmd = [sys.executable, str(script), "--data-dir", str(args.data_dir)]
        code = subprocess.call(cmd)
        seconds = time.perf_counter() - start
        sys.stdout.write(f"{script.stem}: exit {code} after {seconds:.0f} s\n")
        if code != 0:
            failed.append(script.stem)
    if failed:
        sys.stdout.write(f"failed: {', '.join(failed)}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
