"""The suite's process-tree helper does not depend on the terminal width or the checkout's path."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.proctree import alive, descendants


def test_process_tree_helper_finds_a_child_whose_command_line_is_longer_than_300_characters() -> None:
    """A worker-like command line of 400+ characters is found whole, even with ``COLUMNS`` set narrow."""
    marker = "celery-worker-" + "x" * 400
    env = {**os.environ, "COLUMNS": "80"}
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import time; time.sleep(30)', sys.argv[1]])",
         marker],
        env=env)
    try:
        for _ in range(200):
            found = descendants(parent.pid)
            if any(marker in args for args in found.values()):
                break
            subprocess.run(["sleep", "0.05"])
        lines = [args for args in found.values() if marker in args]
        assert lines and len(lines[0]) > 300, found
        assert all(alive(pid) for pid in found)
    finally:
        for pid in descendants(parent.pid):
            os.kill(pid, 9)
        parent.kill()
        parent.wait()
    assert not alive(parent.pid)
