"""Run every benchmark in turn (``make bench``); each prints its table and writes bench/results/*.json."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHES = ["bench_call_path.py", "bench_breaker.py", "bench_batch.py", "footprint.py", "recovery.py"]


def main() -> int:
    here = Path(__file__).resolve().parent
    failed = [name for name in BENCHES if subprocess.run([sys.executable, str(here / name)]).returncode != 0]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
