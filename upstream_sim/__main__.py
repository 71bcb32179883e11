"""``python -m upstream_sim <service> [--host H] [--port N] [--api-key K]``; the key may come from the env."""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn

from upstream_sim.runner import SECRET_VARS, SERVICES, create


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m upstream_sim", description="Serve a simulated upstream.")
    parser.add_argument("service", choices=SERVICES)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", help="default: the service's key variable, e.g. SONARR_API_KEY")
    args = parser.parse_args()
    api_key = args.api_key or os.environ.get(SECRET_VARS[args.service], "")
    if not api_key:
        sys.exit(f"upstream_sim: pass --api-key or set {SECRET_VARS[args.service]}")
    uvicorn.run(create(args.service, api_key).app, host=args.host, port=args.port, log_level="warning")


main()
