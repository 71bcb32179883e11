"""``make mutate``: cosmic-ray over the modules whose logic fast unit tests can judge.

Each target is mutated in a scratch copy of the work tree (never the tree itself), one mutant at a
time, against only its fast test files. Prints the score and every surviving mutant (with its diff);
survivors get a test or a one-line reason in ``tests/mutation_survivors.md``.

    python mutation/run.py [target ...]      # default: every target below
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGETS: dict[str, tuple[str, list[str]]] = {
    "redaction": ("orchestrator/redaction.py", ["tests/test_redaction.py", "tests/test_redaction_logs.py"]),
    "backoff": ("orchestrator/backoff.py", ["tests/test_backoff.py"]),
    "results": ("orchestrator/results.py", ["tests/test_results.py"]),
    "breaker_policy": ("orchestrator/breaker/policy.py",
                       ["tests/breaker/test_breaker_policy.py", "tests/breaker/test_breaker_policy_bounds.py"]),
}
"""target -> (module, its fast test files). The tests run without conftest (no Redis, no workers)."""
PYTEST = "-m pytest -x -q -p no:cacheprovider --noconftest -p no:hypothesispytest"
TIMEOUT_SECONDS = 60


def scratch_copy(into: Path) -> None:
    """The work tree as it is (uncommitted changes too), without ignored files such as .venv."""
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                             check=True, capture_output=True, text=True).stdout
    for name in filter(None, listing.split("\0")):
        source = REPO / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)


def cosmic_ray(*args: str, cwd: Path) -> None:
    subprocess.run([str(Path(sys.executable).with_name("cosmic-ray")), *args], cwd=cwd, check=True)


def run_target(name: str, work: Path) -> tuple[int, int, list[str]]:
    """Mutate one module; returns (killed, total, survivor descriptions)."""
    module, tests = TARGETS[name]
    config = work / f"mutation-{name}.toml"
    command = f"{shlex.quote(sys.executable)} {PYTEST} {' '.join(tests)}"
    config.write_text(f'[cosmic-ray]\nmodule-path = "{module}"\ntimeout = {TIMEOUT_SECONDS}.0\n'
                      f"excluded-modules = []\ntest-command = {json.dumps(command)}\n"
                      '[cosmic-ray.distributor]\nname = "local"\n')
    session = work / f"mutation-{name}.sqlite"
    cosmic_ray("init", str(config), str(session), cwd=work)
    cosmic_ray("baseline", str(config), cwd=work)  # the unmutated module must pass its tests
    cosmic_ray("exec", str(config), str(session), cwd=work)
    dump = subprocess.run([str(Path(sys.executable).with_name("cosmic-ray")), "dump", str(session)], cwd=work,
                          check=True, capture_output=True, text=True).stdout
    killed, total, survivors = 0, 0, []
    for line in dump.splitlines():
        item, result = json.loads(line)
        total += 1
        if result and result.get("test_outcome") == "killed":
            killed += 1
            continue
        mutation = item["mutations"][0]
        outcome = result.get("test_outcome") if result else "not run"
        survivors.append(f"{module} {mutation['operator_name']} #{mutation['occurrence']} "
                         f"line {mutation['start_pos'][0]} ({outcome})\n{(result or {}).get('diff', '')}")
    return killed, total, survivors


def main(names: list[str]) -> int:
    unknown = sorted(set(names) - set(TARGETS))
    if unknown:
        print(f"unknown target {unknown[0]!r}; targets: {', '.join(TARGETS)}", file=sys.stderr)
        return 2
    scores = []
    with tempfile.TemporaryDirectory(prefix="mutation-") as scratch:
        work = Path(scratch)
        scratch_copy(work)
        for name in names or list(TARGETS):
            killed, total, survivors = run_target(name, work)
            scores.append(f"{name}: {killed}/{total} mutants killed ({100 * killed / max(total, 1):.0f}%)")
            print(f"\n== {scores[-1]}; {len(survivors)} survived", *survivors, sep="\n")
    print("\n" + "\n".join(scores))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
