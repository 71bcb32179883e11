"""Simulated SABnzbd, Sonarr, Radarr and Plex upstreams with fault knobs, so nothing needs a real media server.

Quick use::

    handle = upstream_sim.run_in_thread("sonarr", "my-key")   # port=0 picks a free port
    handle.url                                               # http://127.0.0.1:NNNNN
    handle.faults = {"latency_ms": 200, "error_rate": 0.1}
    handle.stats()["max_in_flight"]
    handle.stop()
"""

from upstream_sim.faults import Faults
from upstream_sim.runner import SECRET_VARS, SERVICES, SimHandle, create, run_in_thread

__all__ = ["SECRET_VARS", "SERVICES", "Faults", "SimHandle", "create", "run_in_thread"]
