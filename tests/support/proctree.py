"""The process tree below a pid, with full command lines (no terminal width, no ``ps`` truncation)."""

from __future__ import annotations

import psutil


def descendants(pid: int) -> dict[int, str]:
    """Every live process below ``pid`` (pid -> its whole command line, joined by spaces)."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return {}
    found: dict[int, str] = {}
    for child in children:
        try:
            found[child.pid] = " ".join(child.cmdline())
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs and is not a zombie waiting to be reaped."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
