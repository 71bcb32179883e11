"""``mcp-orch``: a thin command line over the client library, the worker and the stack.

Errors are one line on stderr and a non-zero exit (2 for bad input, 1 for a failed call).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kombu.exceptions
import redis

from orchestrator.client import Orchestrator
from orchestrator.config import CONFIG_PATH_ENV, ConfigError
from orchestrator.errors import InvalidCall, OrchestratorError
from orchestrator.health import PROBE_TOOLS_LIST, HealthStatus
from orchestrator.operator.cli_support import cli_settings, emit, export_settings, one_line
from orchestrator.validation import resolve_server, resolve_tool_name

_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object",
               type(None): "null"}


def schema_types(schema: dict[str, Any] | None) -> set[str]:
    """The JSON types a property's schema allows (``type``, a list of them, or ``anyOf``/``oneOf``)."""
    if not schema:
        return set()
    declared = schema.get("type")
    types = set(declared) if isinstance(declared, list) else {declared} if declared else set()
    for option in [*schema.get("anyOf", []), *schema.get("oneOf", [])]:
        types |= schema_types(option)
    return types


def parse_param(text: str, properties: dict[str, Any] | None = None) -> tuple[str, Any]:
    """``k=v``: the value is read as JSON when it parses (numbers, booleans, lists), else as text; but
    where the tool's input schema wants a string for ``k`` and not the parsed type, the text is kept
    (``-p value=2`` for a string ``value`` sends ``"2"``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise InvalidCall(f"params: --param takes key=value, got {text!r}", field="params")
    try:
        value = json.loads(raw)
    except ValueError:
        return key, raw
    wanted = schema_types((properties or {}).get(key))
    parsed_type = _JSON_TYPES.get(type(value))
    if "string" in wanted and parsed_type not in wanted and not (parsed_type == "integer" and "number" in wanted):
        return key, raw
    return key, value


def tool_properties(client: Orchestrator, server: str, tool: str) -> dict[str, Any] | None:
    """The input-schema properties of ``tool`` from the catalog (None when it does not list the tool)."""
    name = resolve_server(client.settings, server).name
    listed = {entry["name"]: entry for entry in client.catalog.tools(name) or []}
    found = resolve_tool_name(name, tool, listed)
    return listed[found].get("inputSchema", {}).get("properties") if found else None


def collect_params(args: argparse.Namespace, properties: dict[str, Any] | None = None) -> dict[str, Any]:
    """``--json-params`` and the ``-p`` items as one dict; a key given twice is refused, naming it
    (which of the two values was meant cannot be told)."""
    params: dict[str, Any] = {}
    if args.params_json:
        try:
            params = json.loads(args.params_json)
        except ValueError as exc:
            raise InvalidCall(f"params: --json-params is not valid JSON: {exc}", field="params") from None
        if not isinstance(params, dict):
            raise InvalidCall("params: --json-params must be a JSON object", field="params")
    for item in args.param:
        key, value = parse_param(item, properties)
        if key in params:
            raise InvalidCall(f"params.{key}: given twice (by --param or --json-params)", field=f"params.{key}")
        params[key] = value
    return params


def cmd_call(args: argparse.Namespace) -> int:
    client = Orchestrator(cli_settings(args))
    try:
        params = collect_params(args)  # malformed input is refused before anything is read from Redis
        if args.param:
            params = collect_params(args, tool_properties(client, args.server, args.tool))
        result = client.call_tool(args.server, args.tool, params, args.timeout, wait_for_worker=args.wait_for_worker)
    finally:
        client.close()
    emit(result.model_dump(mode="json") if args.json else result.data, args.json)
    return 0


def cmd_tools(args: argparse.Namespace) -> int:
    client = Orchestrator(cli_settings(args))
    try:
        listing = ({args.server: client.list_tools(args.server, refresh=args.refresh)} if args.server
                   else client.list_all_tools(refresh=args.refresh))
    finally:
        client.close()
    if args.json:
        emit(listing, True)
        return 0
    for server, tools in listing.items():
        print(f"{server} ({len(tools)} tools)")
        for tool in tools:
            hints = tool.get("annotations", {})
            flags = ",".join(name for name, key in (("read-only", "readOnlyHint"), ("destructive", "destructiveHint"),
                                                     ("idempotent", "idempotentHint")) if hints.get(key))
            print(f"  {tool['name']:<32} {flags:<28} {tool.get('description', '').splitlines()[0][:60]}")
    return 0


def cmd_breakers(args: argparse.Namespace) -> int:
    client = Orchestrator(cli_settings(args))
    try:
        if args.action == "show":
            snapshots = client.breaker_states()
            if args.server:
                name = resolve_server(client.settings, args.server).name
                snapshots = {name: snapshots[name]}
        else:
            if not args.server:
                raise InvalidCall(f"server: 'breakers {args.action}' needs a server name", field="server")
            target = {"reset": "closed", "disable": "disabled"}.get(args.action, args.action)
            snapshot = client.force_breaker(args.server, target)
            snapshots = {snapshot.server: snapshot}
    finally:
        client.close()
    rows = {name: dataclasses.asdict(snapshot) for name, snapshot in snapshots.items()}
    if args.json:
        emit(rows, True)
        return 0
    print(f"{'server':<12} {'state':<12} {'failures':>8} {'trips':>6} {'retry in':>9}")
    for name, row in rows.items():
        retry = f"{row['retry_after']:.1f}s" if row["retry_after"] else "-"
        print(f"{name:<12} {row['state']:<12} {row['failures']:>8} {row['trips']:>6} {retry:>9}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Replace this process with a Celery worker for the given servers' queues."""
    settings = cli_settings(args)
    names = [name.strip() for name in args.servers.split(",")] if args.servers else list(settings.enabled_servers())
    unknown = [name for name in names if name not in settings.enabled_servers()]
    if unknown:
        raise InvalidCall(f"servers: not configured or not enabled: {', '.join(unknown)}", field="servers")
    export_settings(args.config, settings)
    queues = ",".join(settings.servers[name].queue for name in names)
    argv = [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", queues, "-P", args.pool,
            "-c", str(args.concurrency), "-l", args.loglevel]
    if args.name:
        argv += ["-n", args.name]
    os.execv(sys.executable, argv)
    return 0  # not reached


def cmd_health(args: argparse.Namespace) -> int:
    """Health from Redis (instant), or ``--check``: fresh checks through the queues."""
    client = Orchestrator(cli_settings(args, header=True))
    name = resolve_server(client.settings, args.server).name if args.server else None  # keyed by name, not alias
    try:
        if args.check:
            reports = ({name: client.health_check(name)} if name
                       else client.health_check_all())
        else:
            reports = ({name: client.health_detail(name)} if name
                       else client.health_store.read_many(list(client.settings.enabled_servers().values())))
    finally:
        client.close()
    if args.json:
        emit({name: report.model_dump(mode="json") for name, report in reports.items()}, True)
    else:
        for name, report in reports.items():
            latency = f"{report.latency_ms:.1f}ms" if report.latency_ms is not None else "-"
            # Says what a passing check did not cover; a check that failed (no session) covered nothing at all.
            passed_listing_only = report.probe == PROBE_TOOLS_LIST and report.status is HealthStatus.HEALTHY
            unchecked = "  (tools/list only: upstream not checked)" if passed_listing_only else ""
            print(f"{name:<12} {report.status.value:<9} {latency:>9}  tools={report.tool_count or '-'}  "
                  f"workers={report.consumers}  {report.reason or ''}{unchecked}")
    return 0 if all(report.status.value == "healthy" for report in reports.values()) else 1


def cmd_beat(args: argparse.Namespace) -> int:
    """Replace this process with the one beat (RedBeat: a second one waits on the Redis lock)."""
    export_settings(args.config, cli_settings(args))
    os.execv(sys.executable, [sys.executable, "-m", "celery", "-A", "beat_schedule", "beat", "-l", args.loglevel])
    return 0  # not reached


def cmd_stack(args: argparse.Namespace) -> int:
    from orchestrator.operator.stack import StackError, StackOptions, run_stack

    try:
        return run_stack(StackOptions(config=args.config, layout=args.layout, single_worker=args.single_worker,
                                      pool=args.pool, flower=not args.no_flower,
                                      log_dir=Path(args.log_dir) if args.log_dir else None))
    except StackError as exc:  # e.g. redis-server missing: one line saying how to install it
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _per_server_command(sub: Any, name: str, help_text: str,
                        func: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
    """A subcommand about one server or, without one, every enabled server; prints text or ``--json``."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
    parser.add_argument("server", nargs="?", help="server name or alias (default: all enabled servers)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=func)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mcp-orch", description="AutoArr's MCP tool-call orchestrator.")
    parser.add_argument("--config", help=f"TOML config file (default: ${CONFIG_PATH_ENV} or the bundled defaults)")
    parser.add_argument("--verbose", "-v", action="store_true", help="say which Redis the command uses (on stderr)")
    sub = parser.add_subparsers(dest="command", required=True)

    call = sub.add_parser("call", help="call one tool through the queue and print its result")
    call.add_argument("server", help="server name or alias")
    call.add_argument("tool", help="tool name")
    call.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE",
                      help="a parameter; VALUE is parsed as JSON when it can be, kept as text where the "
                           "tool's schema wants a string (repeatable)")
    call.add_argument("--json-params", dest="params_json", metavar="JSON", help="all parameters as a JSON object")
    call.add_argument("--timeout", type=float, help="deadline in seconds (default: the server's timeout)")
    call.add_argument("--json", action="store_true", help="print the whole result as JSON")
    call.add_argument("--wait-for-worker", action="store_true",
                      help="wait until the deadline for a worker to take the call, even if none runs now")
    call.set_defaults(func=cmd_call)

    tools = _per_server_command(sub, "tools", "list the tools of one server, or of all", cmd_tools)
    tools.add_argument("--refresh", action="store_true", help="ask the workers instead of the cached catalog")

    breakers = sub.add_parser("breakers", help="show, reset or force the circuit breakers")
    breakers.add_argument("action", nargs="?", choices=["show", "reset", "open", "closed", "disable"],
                          default="show", help="show (default); reset or closed: close with fresh counters; "
                          "open: refuse every call; disable: admit every call and count nothing")
    breakers.add_argument("server", nargs="?", help="server name or alias")
    breakers.add_argument("--json", action="store_true", help="print JSON")
    breakers.set_defaults(func=cmd_breakers)

    worker = sub.add_parser("worker", help="run a Celery worker for some servers' queues")
    worker.add_argument("--servers", help="comma-separated server names (default: every enabled server)")
    worker.add_argument("--pool", choices=["threads", "prefork"], default="threads")
    worker.add_argument("--concurrency", "-c", type=int, default=8)
    worker.add_argument("--name", "-n", help="worker node name, e.g. sonarr@%%h")
    worker.add_argument("--loglevel", "-l", default="INFO")
    worker.set_defaults(func=cmd_worker)

    health = _per_server_command(sub, "health", "server health (exit 1 unless all healthy)", cmd_health)
    health.add_argument("--check", action="store_true", help="run fresh checks through the queues")

    beat = sub.add_parser("beat", help="run the beat that schedules health checks (one per deployment)")
    beat.add_argument("--loglevel", "-l", default="INFO")
    beat.set_defaults(func=cmd_beat)

    from orchestrator.operator.cli_operator import add_operator_commands

    add_operator_commands(sub)  # batch, stats, metrics, flower

    stack = sub.add_parser("stack", help="run the whole stack on this machine (Ctrl-C stops it)")
    stack.add_argument("--layout", choices=["compact", "distributed"], default="compact",
                       help="compact (default): one worker with the bundled servers in-process, beat, metrics and "
                            "simulators inside the stack process; distributed: a worker per server queue with "
                            "stdio servers, every part a process of its own")
    stack.add_argument("--no-flower", action="store_true", help="leave Flower out (saves its process)")
    stack.add_argument("--single-worker", action="store_true", help="distributed layout: one worker for every queue")
    stack.add_argument("--pool", choices=["threads", "prefork"], default="threads",
                       help="distributed layout: the workers' pool")
    stack.add_argument("--log-dir", help="keep the logs here (default: a temporary folder, removed after a clean stop)")
    stack.set_defaults(func=cmd_stack)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:  # one line per problem in the file
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except InvalidCall as exc:
        print(one_line(f"error: {type(exc).__name__}: {exc}"), file=sys.stderr)
        return 2
    except OrchestratorError as exc:
        print(one_line(f"error: {type(exc).__name__}: {exc}"), file=sys.stderr)
        return 1
    except (redis.RedisError, kombu.exceptions.OperationalError) as exc:
        print(one_line(f"error: cannot reach Redis (broker / state): {type(exc).__name__}: {exc}"), file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # a batch says what it revoked and withdrew (BatchInterrupted)
        print(one_line(f"error: {exc}") if str(exc) else "error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``mcp-orch tools | head``): say nothing more, and keep the interpreter's
        # final flush of stdout from raising again at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
