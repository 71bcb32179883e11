"""A stack is its own and dies with its parent: per-checkout state, stale state removed, SIGHUP and kill -9."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.operator import stack_state
from orchestrator.operator.processes import free_port, port_open
from tests.operator.test_operator_stack import MCP_ORCH, START_TIMEOUT, operator_env, read_until_ready
from tests.support.procs import REPO
from tests.support.proctree import alive, descendants

pytestmark = pytest.mark.slow


def start_stack(root: Path, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """``mcp-orch stack`` with its state under ``root``; returns once it reported readiness, with its output."""
    proc = subprocess.Popen([*MCP_ORCH, "stack", *args], env={**operator_env(root), **(env or {})}, cwd=REPO,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        return proc, "\n".join(read_until_ready(proc, START_TIMEOUT))
    except BaseException:
        proc.kill()
        raise


def wait_gone(pids: list[int], timeout: float = 60) -> list[int]:
    """The pids still alive after ``timeout`` (empty when all ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [pid for pid in pids if alive(pid)]
        if not left:
            return []
        time.sleep(0.2)
    return [pid for pid in pids if alive(pid)]


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MCP_ORCH, *args], env=operator_env(root), cwd=REPO, capture_output=True, text=True,
                          timeout=60)


def test_kill_9_of_the_stack_takes_every_child_with_it_and_the_cli_removes_its_stale_state(tmp_path: Path) -> None:
    """kill -9 of ``mcp-orch stack``: its children end by themselves (parent-death signal); the CLI then finds the
    state file stale, removes it and says it falls back to the default broker."""
    proc, _ = start_stack(tmp_path)
    children = descendants(proc.pid)
    assert any("celery" in args and "worker" in args for args in children.values())
    state_files = list((tmp_path / "mcp-orch" / "stacks").glob("*.json"))
    assert len(state_files) == 1 and json.loads(state_files[0].read_text())["pid"] == proc.pid
    header = cli(tmp_path, "health").stdout.splitlines()[0]
    assert re.match(rf"Redis redis://127\.0\.0\.1:\d+/0 \(the stack running from this checkout, pid {proc.pid}\)",
                    header), header

    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert wait_gone(list(children)) == [], {pid: children[pid] for pid in children if alive(pid)}

    done = cli(tmp_path, "--verbose", "breakers", "--json")
    assert f"removed the state of a stack that is gone (pid {proc.pid})" in done.stderr
    assert "no stack is running from this checkout" in done.stderr
    assert not state_files[0].exists()


def test_sighup_stops_the_stack_cleanly_and_a_second_stack_of_the_same_checkout_is_refused(tmp_path: Path) -> None:
    """The terminal closing (SIGHUP) stops the stack like Ctrl-C, leaving no process and no log folder; while it
    runs, a second ``mcp-orch stack`` from the same checkout refuses to start and names the first."""
    proc, text = start_stack(tmp_path)
    log_dir = Path(re.search(r"logs in (\S+)\)", text).group(1))
    children = descendants(proc.pid)

    second = cli(tmp_path, "stack")
    assert second.returncode == 1
    assert second.stderr.strip().splitlines() == [
        f"error: a stack from this checkout is already running (pid {proc.pid}); stop it first "
        f"(Ctrl-C in its terminal, or kill {proc.pid})"]

    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=60) == 0
    assert wait_gone(list(children), timeout=10) == []
    assert not log_dir.exists(), "a clean stop leaves no log folder behind"
    assert not list((tmp_path / "mcp-orch" / "stacks").glob("*.json"))


def test_a_port_held_by_another_process_is_named_in_the_stack_notes(tmp_path: Path) -> None:
    """When Flower's configured port is taken, the stack says which process holds it and where Flower went."""
    port = free_port()
    holder = subprocess.Popen(["python3", "-m", "http.server", "--bind", "127.0.0.1", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not port_open(port) and time.monotonic() < deadline:
            time.sleep(0.1)
        proc, text = start_stack(tmp_path, env={"MCP_ORCH_FLOWER__PORT": str(port)})
        try:
            assert re.search(rf"note: port {port} is held by pid {holder.pid} \(\S*python3 -m http.server .*\); "
                             r"Flower is on \d+ instead", text), text
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    finally:
        holder.kill()
        holder.wait()


def test_state_files_are_keyed_by_checkout_config_and_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two configs get two state files; each is readable by its user only; a dead pid reads as stale."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    one, two = tmp_path / "a" / "defaults.toml", tmp_path / "b" / "defaults.toml"
    stack_state.publish(stack_state.StackState(os.getpid(), "redis://127.0.0.1:1/0", str(one), time.time()))
    stack_state.publish(stack_state.StackState(os.getpid(), "redis://127.0.0.1:2/0", str(two), time.time()))
    assert stack_state.find(one).running.broker_url == "redis://127.0.0.1:1/0"
    assert stack_state.find(two).running.broker_url == "redis://127.0.0.1:2/0"
    assert stack_state.state_path(one).stat().st_mode & 0o777 == 0o600
    dead = subprocess.Popen(["true"])
    dead.wait()
    stack_state.publish(stack_state.StackState(dead.pid, "redis://127.0.0.1:3/0", str(one), time.time()))
    lookup = stack_state.find(one)
    assert lookup.running is None and lookup.stale is not None and lookup.stale.pid == dead.pid
    assert not stack_state.state_path(one).exists()


def test_with_its_own_config_the_stack_names_the_configured_redis_and_the_transports_it_serves(
        tmp_path: Path, redis_url: str) -> None:
    """``mcp-orch --config FILE stack`` with FILE's ``broker_url`` starts no Redis; its report still has the
    ``redis`` row naming that Redis (what a Python client must be given), the worker's row says its
    servers run over FILE's transports (stdio here), not in-process, and the suggested command names FILE and
    one of its servers, and works as printed."""
    config = tmp_path / "orchestrator.toml"
    config.write_text(f'broker_url = "{redis_url}"\n\n[servers.probe.transport]\ntype = "stdio"\n'
                      f'command = "python"\nargs = ["-m", "tests.support.servers.probe"]\ncwd = "{REPO}"\n')
    proc, text = start_stack(tmp_path, "--no-flower", env={"MCP_ORCH_CONFIG": str(config)})
    try:
        assert re.search(rf"^\s+redis\s+{re.escape(redis_url)}\s+Redis \(configured; not started by the stack\)$",
                         text, re.M), text
        assert "servers: 1 stdio)" in text and "in-process" not in text, text
        assert "server probe      ready" in text, text
        suggested = shlex.split(re.search(r"^Try:\s+(.*?)\s+\(Ctrl-C", text, re.M).group(1))
        assert suggested[1:] == ["--config", str(config), "tools", "probe"], suggested
        tried = subprocess.run(suggested, env=operator_env(tmp_path), cwd=tmp_path, capture_output=True, text=True,
                               timeout=60)  # from another shell: no MCP_ORCH_CONFIG there
        assert tried.returncode == 0 and "echo" in tried.stdout, tried.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def test_the_terminal_closing_stops_the_stack_even_when_its_parent_keeps_the_hangup(tmp_path: Path) -> None:
    """As under ``make stack`` (or ``ssh -t host make stack``): the session leader catches SIGHUP and waits for the
    stack, so the stack gets no signal; it sees its terminal hang up and stops, leaving no process behind."""
    leader = ("import signal, subprocess, sys; signal.signal(signal.SIGHUP, lambda *_: None); "
              "sys.exit(subprocess.call(sys.argv[1:]))")
    pid, terminal = pty.fork()
    if pid == 0:  # the child: session leader on the new terminal, as make is
        os.chdir(REPO)
        os.execve(sys.executable, [sys.executable, "-c", leader, *MCP_ORCH, "stack", "--no-flower"],
                  operator_env(tmp_path))
    output = b""
    deadline = time.monotonic() + START_TIMEOUT
    while b"Try:" not in output and time.monotonic() < deadline:
        if select.select([terminal], [], [], 1.0)[0]:
            output += os.read(terminal, 65536)
    assert b"Try:" in output, output.decode(errors="replace")[-2000:]
    processes = descendants(pid)
    os.close(terminal)  # the terminal window closes
    assert wait_gone(list(processes), timeout=60) == []
    assert os.waitpid(pid, 0)[1] != -1


def test_a_killed_compact_worker_is_started_again_and_the_stack_keeps_running(tmp_path: Path) -> None:
    """kill -9 of the compact layout's one worker: the stack starts it again (with backoff) instead of stopping,
    and calls go through again."""
    proc, _ = start_stack(tmp_path, "--no-flower")
    try:
        (worker,) = [pid for pid in descendants(proc.pid)
                     if b"workers.app" in Path(f"/proc/{pid}/cmdline").read_bytes()
                     and b" worker" in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")]
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while (call := cli(tmp_path, "call", "sabnzbd", "sabnzbd_get_queue")).returncode != 0:
            assert proc.poll() is None, "the stack stopped instead of starting its worker again"
            assert time.monotonic() < deadline, call.stderr
            time.sleep(1)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
