"""The tool catalog in Redis: each server's tools, input schemas and annotations.

Workers write it from ``tools/list``: on every health check and every time a session opens
(or re-opens). Clients read it: ``list_tools`` is served from it without a worker round trip,
and params are validated against the tool's cached input schema before anything is enqueued,
with an error naming the field (``params.series_id: 'abc' is not of type 'integer'``).

A server with no catalog yet, or a tool the catalog does not list, is not schema-checked: the
MCP server stays the judge (an unknown tool comes back as the tool's own error).

Keys: ``keys.tools_key(server)`` hash tool name -> tool wire JSON; ``keys.tools_meta_key(server)``
hash with ``digest`` (sha256 of the listing), ``count``, ``updated_at``, ``checked_at``, ``source``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import redis
from jsonschema import exceptions as schema_errors
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from orchestrator import keys
from orchestrator.errors import InvalidCall
from orchestrator.tracking import TrackedReads
from orchestrator.validation import PreparedCall, close_tool_matches, resolve_tool_name, tool_name_candidates

__all__ = ["Catalog", "catalog_digest", "schema_error_message"]

log = logging.getLogger("orchestrator.catalog")

VALIDATOR_CACHE_SIZE = 512
"""Compiled input-schema validators kept per process, keyed by the tool's cached JSON."""
_SKIP = object()


def catalog_digest(tools: Sequence[dict[str, Any]]) -> str:
    """A digest of a tool listing that does not depend on tool or key order."""
    canonical = json.dumps(sorted(tools, key=lambda tool: tool.get("name", "")), sort_keys=True,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _path(parts: Iterable[Any]) -> str:
    text = "params"
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def schema_error_message(error: schema_errors.ValidationError) -> tuple[str, str]:
    """``(field, message)`` for one schema violation, the field as a dotted path under ``params``."""
    where = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = next((name for name in error.validator_value if name not in error.instance), None)
        if missing is not None:
            field = _path([*where, missing])
            return field, f"{field}: required property is missing"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(name for name in error.instance if name not in allowed)
        if extra:
            field = _path([*where, extra[0]])
            return field, f"{field}: unexpected property (the tool's input schema does not allow it)"
    field = _path(where)
    return field, f"{field}: {error.message}"


class Catalog:
    """Read and write the tool catalog; validate params against the cached input schemas."""

    def __init__(self, client: redis.Redis, *, tracked: TrackedReads | None = None) -> None:
        self.redis = client
        self._tracked = tracked
        self._validators: OrderedDict[bytes, Any] = OrderedDict()

    # -- writing (workers, and a client after a refresh through a worker) ----------------------
    def replace(self, server: str, tools: Sequence[dict[str, Any]], *, source: str,
                now: float | None = None) -> bool:
        """Store ``server``'s listing; True when the tool set or a schema changed."""
        now = now or time.time()
        digest = catalog_digest(tools)
        meta_key = keys.tools_meta_key(server)
        if keys.text(self.redis.hget(meta_key, "digest")) == digest:
            self.redis.hset(meta_key, mapping={"checked_at": repr(now), "source": source})
            return False
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(keys.tools_key(server))
        if tools:
            pipe.hset(keys.tools_key(server), mapping={tool["name"]: json.dumps(tool, sort_keys=True)
                                                       for tool in tools})
        pipe.hset(meta_key, mapping={"digest": digest, "count": len(tools), "updated_at": repr(now),
                                     "checked_at": repr(now), "source": source})
        pipe.execute()
        if self._tracked is not None:  # our own write: do not wait for Redis's push to say so
            self._tracked.forget(keys.tools_key(server))
        log.info("tool catalog of %s updated from %s: %d tools", server, source, len(tools))
        return True

    # -- reading ---------------------------------------------------------------------------------
    def tools(self, server: str) -> list[dict[str, Any]] | None:
        """``server``'s tools in wire form, sorted by name; None when it has no catalog yet."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.exists(keys.tools_meta_key(server))
        pipe.hgetall(keys.tools_key(server))
        exists, raw = pipe.execute()
        if not exists:
            return None
        return [json.loads(raw[name]) for name in sorted(raw)]

    def meta(self, server: str) -> dict[str, str]:
        """Digest, count and times of ``server``'s catalog ({} when there is none)."""
        return {keys.text(k): keys.text(v) for k, v in self.redis.hgetall(keys.tools_meta_key(server)).items()}

    # -- resolution and validation before enqueue ------------------------------------------------
    def resolve(self, call: PreparedCall) -> tuple[PreparedCall, bool]:
        """``call`` with the tool name its server knows, its params checked against the cached schema,
        and whether the catalog lists that tool. One round trip."""
        resolved, listed = self.resolve_batch([call], prefixed=False)
        return resolved[0], listed[0]

    def resolve_batch(self, calls: Sequence[PreparedCall], *, prefixed: bool = True
                      ) -> tuple[list[PreparedCall], list[bool]]:
        """Resolve and check every call, in one round trip (none when ``tracked`` holds these entries).

        An unprefixed name resolves to the server's prefixed tool when the catalog lists it
        (``get_queue`` on ``sabnzbd`` -> ``sabnzbd_get_queue``). A name the catalog does not
        list is left as it is (a stale catalog must not refuse a new tool): the server judges.
        Errors name ``calls[i].params...`` when ``prefixed``.
        """
        if not calls:
            return [], []
        candidates = [tool_name_candidates(call.server.name, call.tool) for call in calls]
        resolved, listed = list(calls), [False] * len(calls)
        entries = self._entries([(keys.tools_key(call.server.name), names)
                                 for call, names in zip(calls, candidates, strict=True)])
        for index, (call, names, raws) in enumerate(zip(calls, candidates, entries, strict=True)):
            found = {name: raw for name, raw in zip(names, raws, strict=True) if raw is not None}
            name = resolve_tool_name(call.server.name, call.tool, found)
            if name is None:
                continue
            if name != call.tool:
                resolved[index] = replace(call, tool=name)
            listed[index] = True
            self._check_one(resolved[index], found[name], prefix=f"calls[{index}]." if prefixed else "")
        return resolved, listed

    def _entries(self, lookups: Sequence[tuple[str, Sequence[str]]]) -> list[list[bytes | None]]:
        """``HMGET`` of each (catalog key, tool names): from the tracked cache when there is one, else one pipeline."""
        if self._tracked is not None:
            return self._tracked.read_many([("HMGET", key, *names) for key, names in lookups])
        pipe = self.redis.pipeline(transaction=False)
        for key, names in lookups:
            pipe.hmget(key, names)
        return pipe.execute()

    def close_matches(self, server: str, tool: str, servers: Sequence[str]) -> str:
        """A hint naming the tools like ``tool`` on ``server`` and elsewhere ('' when none is close)."""
        pipe = self.redis.pipeline(transaction=False)
        for name in servers:
            pipe.hkeys(keys.tools_key(name))
        catalogs = {name: [keys.text(tool) for tool in tools]
                    for name, tools in zip(servers, pipe.execute(), strict=True)}
        return close_tool_matches(server, tool, catalogs)

    def _check_one(self, call: PreparedCall, raw: bytes | None, *, prefix: str) -> None:
        if raw is None:
            return
        validator = self._validator(raw, call.server.name, call.tool)
        if validator is None:
            return
        try:
            error = schema_errors.best_match(validator.iter_errors(call.params))
        except Exception as exc:  # an unresolvable $ref or a broken schema: let the server judge
            log.warning("cannot validate params of %s/%s against its schema: %s", call.server.name, call.tool, exc)
            return
        if error is None:
            return
        field, message = schema_error_message(error)
        raise InvalidCall(f"{prefix}{message}", server=call.server.name, tool=call.tool, field=f"{prefix}{field}")

    def _validator(self, raw: bytes, server: str, tool: str) -> Validator | None:
        cached = self._validators.get(raw)
        if cached is not None:
            self._validators.move_to_end(raw)
            return None if cached is _SKIP else cached
        validator: Any = _SKIP
        try:
            schema = json.loads(raw).get("inputSchema")
            if isinstance(schema, dict) and schema:
                cls = validator_for(schema)
                cls.check_schema(schema)
                validator = cls(schema)
        except Exception as exc:  # a schema we cannot compile is not a reason to refuse the call
            log.warning("input schema of %s/%s is not usable for validation: %s", server, tool, exc)
        self._validators[raw] = validator
        if len(self._validators) > VALIDATOR_CACHE_SIZE:
            self._validators.popitem(last=False)
        return None if validator is _SKIP else validator
