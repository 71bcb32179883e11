"""Imported by the worker ``bench/profile_call_path.py`` starts (``--include``): stamps the worker's side of
each call (``bench.call_path_stamps``) and writes them, as JSON, to ``$CALL_PATH_STAMPS`` when it exits."""

from __future__ import annotations

import atexit
import json
import os

from bench.call_path_stamps import STAMPS, install_worker


def _dump() -> None:
    with open(os.environ["CALL_PATH_STAMPS"], "w") as out:
        json.dump(STAMPS, out)


install_worker()
atexit.register(_dump)
