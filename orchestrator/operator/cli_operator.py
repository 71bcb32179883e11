"""The operator's subcommands of ``mcp-orch``: ``batch``, ``stats``, ``metrics`` and ``flower``.

Kept apart from ``orchestrator.operator.cli`` (which adds them to its parser) so each stays small; the
same conventions hold: ``--help`` everywhere, ``--json`` for scripts, errors as one line on
stderr with a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from orchestrator import redis_conn
from orchestrator.errors import InvalidCall, OrchestratorError
from orchestrator.operator.cli_support import cli_settings, emit, export_settings, one_line
from orchestrator.results import ToolResult

PROGRESS_INTERVAL_SECONDS = 0.1
"""Shortest time between two redraws of the batch progress bar (seconds)."""
BAR_WIDTH = 30


# -- batch -------------------------------------------------------------------------------------


def load_batch(path: str) -> tuple[list[Any], dict[str, Any]]:
    """Calls and batch options from a JSON file (``-`` is stdin): a list of calls, or an object
    ``{"calls": [...], "timeout": s, "fail_fast": bool, "max_concurrency": {server: n}}``."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise InvalidCall(f"file: cannot read {path}: {exc.strerror}", field="file") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidCall(f"file: {path} is not valid JSON: {exc}", field="file") from None
    if isinstance(data, list):
        return data, {}
    if isinstance(data, dict) and isinstance(data.get("calls"), list):
        unknown = sorted(set(data) - {"calls", "timeout", "fail_fast", "max_concurrency"})
        if unknown:
            raise InvalidCall(f"file: unknown key {unknown[0]!r} (allowed: calls, timeout, fail_fast, "
                              "max_concurrency)", field="file")
        return data["calls"], {k: v for k, v in data.items() if k != "calls"}
    raise InvalidCall(f"file: {path} must hold a JSON list of calls or an object with a 'calls' list", field="file")


def parse_caps(items: list[str]) -> dict[str, int]:
    caps: dict[str, int] = {}
    for item in items:
        server, sep, raw = item.partition("=")
        if not sep or not server or not raw.isdigit():
            raise InvalidCall(f"max_concurrency: --max-concurrency takes server=N, got {item!r}",
                              field="max_concurrency")
        caps[server] = int(raw)
    return caps


class ProgressBar:
    """``[#####.....] 12/40`` redrawn in place on ``stream`` (at most every 0.1 s, and at the end)."""

    def __init__(self, stream: TextIO, label: str = "batch") -> None:
        self.stream = stream
        self.label = label
        self.started = time.monotonic()
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last < PROGRESS_INTERVAL_SECONDS:
            return
        self._last = now
        filled = BAR_WIDTH * done // total if total else BAR_WIDTH
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} "
                          f"{now - self.started:6.1f}s")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def outcome_row(index: int, outcome: ToolResult | OrchestratorError) -> dict[str, Any]:
    """One batch outcome as JSON: ``ok`` with the result, or the error's type and fields."""
    if isinstance(outcome, ToolResult):
        return {"index": index, "ok": outcome.ok, "result": outcome.model_dump(mode="json")}
    return {"index": index, "ok": False, "error": outcome.to_dict()}


def _short(value: Any, width: int = 60) -> str:
    text = one_line(value if isinstance(value, str) else json.dumps(value, default=str, separators=(",", ":")))
    return text if len(text) <= width else text[:width - 1] + "…"


def print_outcomes(outcomes: list[ToolResult | OrchestratorError], calls: list[Any]) -> None:
    print(f"{'#':>3}  {'server':<10} {'tool':<30} {'status':<24} {'ms':>8}  result")
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, ToolResult):
            status, ms, text = "ok", f"{outcome.duration * 1000:.1f}", _short(outcome.data)
            server, tool = outcome.server, outcome.tool
        else:
            call = calls[index] if isinstance(calls[index], dict) else {}
            status, ms, text = type(outcome).__name__, "-", _short(outcome.message)
            server = outcome.server or str(call.get("server", "?"))
            tool = outcome.tool or str(call.get("tool", "?"))
        print(f"{index:>3}  {server:<10} {tool:<30} {status:<24} {ms:>8}  {text}")
    failed = sum(not isinstance(outcome, ToolResult) for outcome in outcomes)
    print(f"\n{len(outcomes) - failed} ok, {failed} failed")


def cmd_batch(args: argparse.Namespace) -> int:
    from orchestrator.client import Orchestrator

    calls, options = load_batch(args.file)
    timeout = args.timeout if args.timeout is not None else options.get("timeout")
    fail_fast = args.fail_fast or bool(options.get("fail_fast", False))
    caps = {**(options.get("max_concurrency") or {}), **parse_caps(args.max_concurrency)}
    progress = None if args.no_progress else ProgressBar(sys.stderr)
    client = Orchestrator(cli_settings(args))
    try:
        outcomes = client.call_tools_parallel(calls, timeout=timeout, fail_fast=fail_fast, progress=progress,
                                              max_concurrency=caps or None)
    except KeyboardInterrupt:
        if progress is not None:
            sys.stderr.write("\n")  # end the progress bar's line before the one-line summary
        raise
    finally:
        client.close()
    if args.json:
        emit([outcome_row(i, outcome) for i, outcome in enumerate(outcomes)], True)
    else:
        print_outcomes(outcomes, calls)
    return 0 if all(isinstance(outcome, ToolResult) for outcome in outcomes) else 1


# -- stats -------------------------------------------------------------------------------------


def _fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def cmd_stats(args: argparse.Namespace) -> int:
    import redis

    from orchestrator.metrics import read_call_stats, reset_call_stats, server_totals
    from orchestrator.validation import resolve_server

    settings = cli_settings(args, header=True)
    names = [resolve_server(settings, args.server).name] if args.server else list(settings.servers)
    client = redis_conn.connect(settings, socket_timeout=5, socket_connect_timeout=5)
    try:
        if args.reset:
            reset_call_stats(client, names)
        stats = read_call_stats(client, names)
    except redis.RedisError as exc:
        raise OrchestratorError(f"cannot read stats from Redis: {type(exc).__name__}: {exc}") from None
    finally:
        client.close()
    rows = []
    for name in names:
        rows.append(server_totals(stats[name], name).as_dict())
        if args.tools:
            rows.extend(item.as_dict() for item in stats[name].values())
    if args.json:
        emit(rows, True)
        return 0
    print(f"{'server':<12} {'tool':<32} {'calls':>7} {'failed':>7} {'fail%':>6} {'retries':>7} "
          f"{'mean ms':>8} {'p50 ms':>8} {'p95 ms':>8}")
    for row in rows:
        rate = f"{100 * row['failures'] / row['calls']:.1f}" if row["calls"] else "-"
        print(f"{row['server']:<12} {row['tool']:<32} {row['calls']:>7} {row['failures']:>7} {rate:>6} "
              f"{row['retries']:>7} {_fmt_ms(row['mean_ms']):>8} {_fmt_ms(row['p50_ms']):>8} "
              f"{_fmt_ms(row['p95_ms']):>8}")
    print("(p50/p95 are estimates, interpolated inside the duration histogram's buckets; the mean is exact)")
    return 0


# -- metrics -----------------------------------------------------------------------------------


def cmd_metrics(args: argparse.Namespace) -> int:

    from orchestrator.operator.metrics_server import exposition, make_metrics_server

    settings = cli_settings(args)
    if args.once:
        client = redis_conn.connect(settings, socket_timeout=5, socket_connect_timeout=5)
        try:
            sys.stdout.write(exposition(settings, client))
        finally:
            client.close()
        return 0
    try:
        server = make_metrics_server(settings, args.address, args.port)
    except OSError as exc:
        raise InvalidCall(f"port: cannot listen on {args.address}:{args.port}: {exc.strerror}", field="port") from None

    def stop(*_: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"metrics on http://{args.address}:{server.server_port}/metrics", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


# -- flower ------------------------------------------------------------------------------------


def cmd_flower(args: argparse.Namespace) -> int:
    """Replace this process with Flower on the orchestrator's broker, behind basic auth."""
    from orchestrator.operator.flower import BASIC_AUTH_ENV, flower_argv, flower_env, flower_login

    settings = cli_settings(args)
    login = None if args.no_auth else flower_login(settings, generate=False)
    if login is None and not args.no_auth:
        raise InvalidCall("flower.password: not set; set MCP_ORCH_FLOWER__PASSWORD (or pass --no-auth to run "
                          "Flower without a login)", field="flower.password")
    export_settings(args.config, settings)
    os.environ.pop(BASIC_AUTH_ENV, None)
    os.environ.update(flower_env(login))
    argv = flower_argv(sys.executable, address=args.address or settings.flower.address,
                       port=args.port or settings.flower.port, url_prefix=args.url_prefix)
    os.execv(sys.executable, argv)
    return 0  # not reached


# -- the parser --------------------------------------------------------------------------------


def add_operator_commands(sub: Any) -> None:
    """Add ``batch``, ``stats``, ``metrics`` and ``flower`` to ``mcp-orch``'s subcommands."""
    from orchestrator.operator.metrics_server import METRICS_PORT

    batch = sub.add_parser("batch", help="run a batch of calls from a JSON file (progress on stderr)",
                           description="Run the calls of FILE (a JSON list of {server, tool, params, timeout}, or "
                                       "{\"calls\": [...], \"timeout\", \"fail_fast\", \"max_concurrency\"}) "
                                       "as one Celery group; print a results table. Exit 1 if any call failed.")
    batch.add_argument("file", metavar="FILE.json", help="the calls ('-' reads stdin)")
    batch.add_argument("--timeout", type=float, help="overall deadline of the batch in seconds")
    batch.add_argument("--fail-fast", action="store_true", help="cancel the rest after the first permanent failure")
    batch.add_argument("--max-concurrency", action="append", default=[], metavar="SERVER=N",
                       help="at most N calls running at once on SERVER, fleet-wide (repeatable)")
    batch.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    batch.add_argument("--json", action="store_true", help="print one JSON outcome per call")
    batch.set_defaults(func=cmd_batch)

    stats = sub.add_parser("stats", help="calls, failures, retries and latency per server (from the workers)")
    stats.add_argument("server", nargs="?", help="server name or alias (default: every configured server)")
    stats.add_argument("--tools", action="store_true", help="a row per tool as well")
    stats.add_argument("--reset", action="store_true", help="zero the counters first")
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.set_defaults(func=cmd_stats)

    metrics = sub.add_parser("metrics", help="serve Prometheus metrics (breakers, health, calls, queues)")
    metrics.add_argument("--address", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    metrics.add_argument("--port", type=int, default=METRICS_PORT, help=f"port (default: {METRICS_PORT})")
    metrics.add_argument("--once", action="store_true", help="print the metrics once to stdout and exit")
    metrics.set_defaults(func=cmd_metrics)

    flower = sub.add_parser("flower", help="run Flower (the task monitor) behind basic auth")
    flower.add_argument("--address", help="address to listen on (default: flower.address, 127.0.0.1)")
    flower.add_argument("--port", type=int, help="port (default: flower.port, 5555)")
    flower.add_argument("--url-prefix", help="serve under this path prefix (behind a reverse proxy)")
    flower.add_argument("--no-auth", action="store_true", help="run without a login (not recommended)")
    flower.set_defaults(func=cmd_flower)
