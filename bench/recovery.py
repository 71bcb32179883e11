"""Seconds from the upstream's return to the first successful call, health-driven recovery on vs off.

One SABnzbd simulator behind two configurations of the bundled SABnzbd MCP server, the same in all
but ``breaker.recover_on_health``: ``sab_on`` (true, the default) and ``sab_off`` (false). Both trip
on 2 failed calls and stay open ``OPEN_SECONDS``; beat checks both every ``INTERVAL`` seconds. The
simulator goes down, both breakers are tripped, the simulator comes back, and a caller per server
tries every ``POLL`` seconds until a call succeeds. Run: ``python bench/recovery.py`` (about 30 s).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import upstream_sim
from bench.common import REPO, print_table, start_redis, start_worker, temp_dir, write_json
from orchestrator.celery_app import make_celery
from orchestrator.client import Orchestrator
from orchestrator.config import load_settings
from orchestrator.errors import OrchestratorError
from orchestrator.operator.processes import ChildProcess, wait_until

INTERVAL = 2.0
"""Health interval of both servers (seconds)."""
OPEN_SECONDS = 20.0
"""How long a tripped breaker stays open without help (seconds)."""
POLL = 0.1
"""How often each caller tries again (seconds)."""
KEY = "bench-recovery-key-1e5d"
SERVER = """
[servers.{name}]
health_interval_seconds = {interval}
health_tool = "sabnzbd_get_queue"
health_params = {{ limit = 1 }}
timeout = 5
breaker = {{ failure_threshold = 2, open_seconds = {open_seconds}, success_threshold = 1, recover_on_health = {on} }}
retry = {{ max_attempts = 1 }}
[servers.{name}.transport]
type = "stdio"
command = "python"
args = ["-m", "media_mcp.sabnzbd", "--transport", "stdio"]
cwd = "{repo}"
env = {{ SABNZBD_URL = "${{SABNZBD_URL}}", SABNZBD_API_KEY = "${{SABNZBD_API_KEY}}", SABNZBD_TIMEOUT = "1" }}
"""
SERVERS = {"sab_on": "true", "sab_off": "false"}


def first_success_after(client: Orchestrator, server: str, back: float, out: dict[str, float]) -> None:
    """Try ``server`` every POLL seconds; store the seconds from ``back`` to the first success."""
    while time.monotonic() - back < OPEN_SECONDS * 3:
        try:
            if client.call_tool(server, "sabnzbd_get_queue", {"limit": 1}, timeout=5).ok:
                out[server] = time.monotonic() - back
                return
        except OrchestratorError:  # CircuitBreakerOpenError until the breaker admits a call
            pass
        time.sleep(POLL)


def main() -> int:
    root = temp_dir()
    redis_proc, url = start_redis(root)
    sim = upstream_sim.run_in_thread("sabnzbd", KEY)
    children: list[ChildProcess] = []
    try:
        config = root / "recovery.toml"
        body = "".join(SERVER.format(name=name, interval=INTERVAL, open_seconds=OPEN_SECONDS, on=on, repo=REPO)
                       for name, on in SERVERS.items())
        config.write_text(f'broker_url = "{url}"\nbeat_lock_timeout = 4\nbeat_max_interval = 0.5\n{body}')
        settings = load_settings(config)
        app = make_celery(settings)
        env = {"MCP_ORCH_CONFIG": str(config), "SABNZBD_URL": sim.url, "SABNZBD_API_KEY": KEY}
        children.append(start_worker(app, name="recovery", queues=[s.queue for s in settings.servers.values()],
                                     env=env, log_dir=root, concurrency=4))
        beat = [sys.executable, "-m", "orchestrator.operator.cli", "--config", str(config), "beat", "--loglevel",
                "WARNING"]
        children.append(ChildProcess("beat", beat, log=root / "beat.log", env=env, cwd=REPO))
        client = Orchestrator(settings, app=app)
        wait_until(lambda: all(client.health_detail(name).status.value == "healthy" for name in SERVERS), 30,
                   "both servers healthy")
        sim.faults = {"down": True}
        for name in SERVERS:
            for _ in range(2):
                with contextlib.suppress(OrchestratorError):
                    client.call_tool(name, "sabnzbd_get_queue", {"limit": 1}, timeout=5)
        assert all(client.breaker_states()[name].state == "open" for name in SERVERS), client.breaker_states()
        sim.faults = {}
        back = time.monotonic()
        seconds: dict[str, float] = {}
        callers = [threading.Thread(target=first_success_after, args=(client, name, back, seconds))
                   for name in SERVERS]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join()
        rows = [{"recovery": "health-driven (recover_on_health = true)", "seconds": round(seconds["sab_on"], 2)},
                {"recovery": "open_seconds only (recover_on_health = false)", "seconds": round(seconds["sab_off"], 2)}]
        print_table(f"upstream back -> first successful call (health interval {INTERVAL:g}s, open_seconds "
                    f"{OPEN_SECONDS:g}s)", rows, ["recovery", "seconds"])
        path = write_json("recovery", {"health_interval_seconds": INTERVAL, "open_seconds": OPEN_SECONDS,
                                       "seconds_to_first_success": seconds})
        print(f"\nwritten to {path.relative_to(REPO)}")
        client.close()
        app.close()
        return 0
    finally:
        for child in reversed(children):
            child.stop()
        sim.stop()
        redis_proc.stop()


if __name__ == "__main__":
    sys.exit(main())
