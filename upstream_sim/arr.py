"""What the Sonarr and Radarr simulators share: ``/api/v3`` auth, paging, commands, a library of items, and the
settings third-party clients read (quality profiles, root folders, tags, languages).

Every reply uses only properties of the official OpenAPI schemas (they forbid extra ones).
"""

from __future__ import annotations

import copy
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from upstream_sim.app import Guard, guarded
from upstream_sim.clock import Clock

API = "/api/v3"
ENGLISH = {"id": 1, "name": "English"}
COMMAND_RUNTIME_S = 2.0
"""Simulated seconds a command stays ``started`` before it is ``completed``."""
LANGUAGES = [(1, "English"), (2, "French"), (3, "Spanish"), (4, "German"), (5, "Italian"), (8, "Japanese")]
"""(id, name) of the languages listed, with the real services' ids."""
TAGS = [{"id": 1, "label": "4k"}, {"id": 2, "label": "kids"}]
FREE_SPACE = 2_000_000_000_000
"""Bytes free in every root folder."""
TOTAL_SPACE = 8_000_000_000_000
"""Bytes of the disk each root folder is on."""


def key_guard(api_key: str) -> Guard:
    """Sonarr/Radarr take the key as ``X-Api-Key`` or ``?apikey=`` and answer 401 otherwise."""

    def check(request: Request) -> Response | None:
        given = request.headers.get("x-api-key") or request.query_params.get("apikey") or ""
        if given and secrets.compare_digest(given, api_key):
            return None
        return Response(status_code=401)

    return check


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def query_time(request: Request, name: str, default: datetime) -> datetime:
    """A ``start``/``end`` query value (a date or a timestamp); a bare date means midnight UTC."""
    raw = request.query_params.get(name)
    if not raw:
        return default
    moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def calendar_window(request: Request, clock: Clock) -> tuple[datetime, datetime]:
    """``start``/``end`` of a calendar request; like the real services, today and the next two days by default."""
    today = datetime.fromtimestamp(clock.now(), UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return query_time(request, "start", today), query_time(request, "end", today + timedelta(days=2))


def flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").lower() == "true"


def page(request: Request, records: list[dict[str, Any]], sort_key: str) -> dict[str, Any]:
    """The paging envelope: ``page`` from 1, ``pageSize`` 10 unless given."""
    number = max(int(request.query_params.get("page") or 1), 1)
    size = max(int(request.query_params.get("pageSize") or 10), 1)
    return {
        "page": number,
        "pageSize": size,
        "sortKey": sort_key,
        "sortDirection": "descending",
        "totalRecords": len(records),
        "records": records[(number - 1) * size : number * size],
    }


def not_found() -> Response:
    return JSONResponse({"message": "NotFound", "description": None}, status_code=404)


def invalid(prop: str, message: str, value: Any = None) -> Response:
    """Sonarr/Radarr's validation failure: HTTP 400 with a list of property errors."""
    error = {"propertyName": prop, "errorMessage": message, "attemptedValue": value, "severity": "error"}
    return JSONResponse([error], status_code=400)


class Commands:
    """Commands posted to ``/command``: queued, then started, then completed as simulated time passes."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._items: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def create(self, name: str, display_name: str) -> dict[str, Any]:
        now = datetime.fromtimestamp(self.clock.now(), UTC)
        with self._lock:
            command = {
                "id": len(self._items) + 1,
                "name": name,
                "commandName": display_name,
                "message": None,
                "body": {
                    "sendUpdatesToClient": True,
                    "updateScheduledTask": True,
                    "completionMessage": "Completed",
                    "requiresDiskAccess": False,
                    "isExclusive": False,
                    "isLongRunning": False,
                    "name": name,
                    "lastExecutionTime": None,
                    "lastStartTime": None,
                    "trigger": "manual",
                    "suppressMessages": False,
                },
                "priority": "normal",
                "status": "queued",
                "result": "unknown",
                "queued": iso(now),
                "started": None,
                "ended": None,
                "trigger": "manual",
                "stateChangeTime": iso(now),
                "sendUpdatesToClient": True,
                "updateScheduledTask": True,
                "lastExecutionTime": None,
            }
            self._items[command["id"]] = command
            return copy.deepcopy(command)

    def all(self) -> list[dict[str, Any]]:
        """Every command posted, each as ``get`` reports it now."""
        with self._lock:
            ids = list(self._items)
        return [command for command in map(self.get, ids) if command]

    def get(self, command_id: int) -> dict[str, Any] | None:
        with self._lock:
            command = self._items.get(command_id)
            if command is None:
                return None
            queued = parse_time(command["queued"])
            now = datetime.fromtimestamp(self.clock.now(), UTC)
            if now - queued >= timedelta(seconds=COMMAND_RUNTIME_S) and command["status"] != "completed":
                command.update(
                    status="completed",
                    result="successful",
                    started=command["queued"],
                    ended=iso(now),
                    duration="00:00:02",
                    message="Completed",
                    stateChangeTime=iso(now),
                )
            return copy.deepcopy(command)


class Library:
    """The items of one resource (series or movies) plus the lookup catalog new ones come from."""

    def __init__(
        self,
        clock: Clock,
        items: list[dict[str, Any]],
        catalog: list[dict[str, Any]],
        key: str,
        profiles: list[dict[str, Any]],
        roots: tuple[str, ...],
    ) -> None:
        self.clock = clock
        self.key = key
        """The external id: ``tvdbId`` or ``tmdbId``."""
        self.profiles = profiles
        self.roots = roots
        """The root folders' paths."""
        self.lock = threading.RLock()
        self.items = {item["id"]: item for item in items}
        self.catalog = catalog
        self._next_id = max(self.items, default=0) + 1

    def lookup(self, term: str) -> list[dict[str, Any]]:
        """Match ``tvdb:<id>``/``tmdb:<id>`` or a title substring; items in the library carry their id."""
        prefix, _, wanted = term.partition(":")
        by_id = wanted.isdigit() and prefix.lower() in ("tvdb", "tmdb")
        owned = {item[self.key]: item for item in self.items.values()}
        found = []
        for entry in self.catalog:
            hit = entry[self.key] == int(wanted) if by_id else term.lower() in entry["title"].lower()
            if hit:
                found.append(copy.deepcopy(owned.get(entry[self.key], entry)))
        return found

    def add(self, body: dict[str, Any], complete: Callable[[dict[str, Any]], None]) -> dict[str, Any] | Response:
        """Validate like the real service, then store the catalog entry with the caller's settings."""
        for prop, label in ((self.key, self.key), ("qualityProfileId", "Quality Profile Id")):
            if not body.get(prop):
                return invalid(prop[0].upper() + prop[1:], f"'{label}' must be greater than '0'.", body.get(prop))
        if not any(profile["id"] == body["qualityProfileId"] for profile in self.profiles):
            return invalid("QualityProfileId", "Quality Profile does not exist", body["qualityProfileId"])
        root = body.get("rootFolderPath") or ""
        if not root and not body.get("path"):
            return invalid("RootFolderPath", "'Root Folder Path' must not be empty.", root)
        if any(item[self.key] == body[self.key] for item in self.items.values()):
            return invalid(self.key[0].upper() + self.key[1:], "This item has already been added", body[self.key])
        entry = next((e for e in self.catalog if e[self.key] == body[self.key]), None)
        if entry is None:
            return invalid(self.key[0].upper() + self.key[1:], f"No item found with {self.key} {body[self.key]}")
        item = copy.deepcopy(entry)
        item.update({key: value for key, value in body.items() if key in entry and key not in ("id", "added")})
        item.update(
            id=self._next_id,
            monitored=bool(body.get("monitored", True)),
            rootFolderPath=root,
            path=body.get("path") or f"{root.rstrip('/')}/{item['title']}",
            added=iso(datetime.fromtimestamp(self.clock.now(), UTC)),
        )
        if isinstance(body.get("addOptions"), dict):
            item["addOptions"] = body["addOptions"]
        complete(item)
        self._next_id += 1
        self.items[item["id"]] = item
        return copy.deepcopy(item)


def json_body(handler: Callable[[dict[str, Any]], Response]) -> Callable[[Request], Any]:
    """Parse a JSON object body, answering 400 for anything else."""

    async def endpoint(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return invalid("body", "A JSON object is required.")
        if not isinstance(body, dict):
            return invalid("body", "A JSON object is required.")
        return handler(body)

    return endpoint


def item_id(request: Request) -> int:
    return int(request.path_params["id"])


def shared_routes(app_name: str, version: str, commands: Commands, guard: Guard) -> list[Route]:
    """``/ping``, ``/system/status``, ``/health``, ``/system/backup``, the event lists (history, blocklist, log)
    and ``/command``."""

    async def status(request: Request) -> Response:
        return JSONResponse(
            {
                "appName": app_name,
                "instanceName": app_name,
                "version": version,
                "buildTime": "2026-10-01T00:00:00Z",
                "isDebug": False,
                "isProduction": True,
                "isAdmin": False,
                "isUserInteractive": False,
                "startupPath": "/app/bin",
                "appData": "/config",
                "osName": "debian",
                "osVersion": "12",
                "isLinux": True,
                "isOsx": False,
                "isWindows": False,
                "isDocker": True,
                "branch": "main",
                "authentication": "external",
                "urlBase": "",
                "runtimeVersion": "8.0.11",
                "runtimeName": ".NET",
            }
        )

    def post_command(body: dict[str, Any]) -> Response:
        name = body.get("name")
        if not name:
            return invalid("Name", "'Name' must not be empty.")
        display = "".join(f" {c}" if c.isupper() and i else c for i, c in enumerate(name))
        return JSONResponse(commands.create(name, display))

    async def get_command(request: Request) -> Response:
        command = commands.get(item_id(request))
        return JSONResponse(command) if command else not_found()

    async def list_commands(request: Request) -> Response:
        return JSONResponse(commands.all())

    async def nothing_yet(request: Request) -> Response:
        """History, blocklist and log: a paging envelope with no records (the simulator records no events)."""
        return JSONResponse(page(request, [], "date" if request.url.path.endswith("history") else "time"))

    async def no_backups(request: Request) -> Response:
        return JSONResponse([])

    async def ping(request: Request) -> Response:
        """``/ping`` answers without a key, as the real services' liveness probe does."""
        return JSONResponse({"status": "OK"})

    return [
        Route("/ping", ping),
        Route(f"{API}/system/status", guarded(status, guard)),
        Route(f"{API}/health", guarded(healthy, guard)),
        Route(f"{API}/system/backup", guarded(no_backups, guard)),
        *(Route(f"{API}/{events}", guarded(nothing_yet, guard)) for events in ("history", "blocklist", "log")),
        Route(f"{API}/command", guarded(json_body(post_command), guard), methods=["POST"]),
        Route(f"{API}/command", guarded(list_commands, guard)),
        Route(f"{API}/command/{{id:int}}", guarded(get_command, guard)),
    ]


async def healthy(request: Request) -> Response:
    """``/health`` lists failing health checks; a simulator has none."""
    return JSONResponse([])


def quality_profiles(qualities: list[dict[str, Any]], hd_ids: set[int]) -> list[dict[str, Any]]:
    """A fresh install's first profiles: ``Any`` (every quality) and ``HD-1080p`` (the ``hd_ids`` only).

    ``qualities`` go from worst to best; a profile's cutoff is the best quality it allows.
    """

    def profile(profile_id: int, name: str, allowed: set[int]) -> dict[str, Any]:
        return {
            "id": profile_id,
            "name": name,
            "upgradeAllowed": False,
            "cutoff": [quality["id"] for quality in qualities if quality["id"] in allowed][-1],
            "items": [{"quality": quality, "items": [], "allowed": quality["id"] in allowed} for quality in qualities],
            "minFormatScore": 0,
            "cutoffFormatScore": 0,
            "minUpgradeFormatScore": 1,
            "formatItems": [],
        }

    return [profile(1, "Any", {quality["id"] for quality in qualities}), profile(4, "HD-1080p", hd_ids)]


def settings_routes(library: Library, guard: Guard) -> list[Route]:
    """``/qualityprofile``, ``/rootfolder``, ``/tag`` and ``/language``, each a list plus one item by id, and
    ``/diskspace`` (the disk of each root folder)."""

    def root_folders() -> list[dict[str, Any]]:
        return [
            {"id": number, "path": path, "accessible": True, "freeSpace": FREE_SPACE, "unmappedFolders": []}
            for number, path in enumerate(library.roots, start=1)
        ]

    def languages() -> list[dict[str, Any]]:
        return [{"id": number, "name": name, "nameLower": name.lower()} for number, name in LANGUAGES]

    listings: dict[str, Callable[[], list[dict[str, Any]]]] = {
        "qualityprofile": lambda: library.profiles,
        "rootfolder": root_folders,
        "tag": lambda: TAGS,
        "language": languages,
    }

    async def disk_space(request: Request) -> Response:
        disk = {"label": "", "freeSpace": FREE_SPACE, "totalSpace": TOTAL_SPACE}
        return JSONResponse([{"path": path, **disk} for path in library.roots])

    routes = [route for resource, listing in listings.items() for route in listing_routes(resource, listing, guard)]
    return [*routes, Route(f"{API}/diskspace", guarded(disk_space, guard))]


def listing_routes(resource: str, listing: Callable[[], list[dict[str, Any]]], guard: Guard) -> list[Route]:
    """``GET /<resource>`` answering ``listing()`` and ``GET /<resource>/{id}`` answering one of it or 404."""

    async def all_of(request: Request) -> Response:
        return JSONResponse(copy.deepcopy(listing()))

    async def one_of(request: Request) -> Response:
        found = next((entry for entry in listing() if entry["id"] == item_id(request)), None)
        return JSONResponse(copy.deepcopy(found)) if found else not_found()

    return [
        Route(f"{API}/{resource}", guarded(all_of, guard)),
        Route(f"{API}/{resource}/{{id:int}}", guarded(one_of, guard)),
    ]


def library_routes(
    resource: str,
    library: Library,
    guard: Guard,
    complete: Callable[[dict[str, Any]], None],
    forget: Callable[[int], None],
) -> list[Route]:
    """List, get, add, delete and look up items of ``/api/v3/<resource>``."""

    async def list_items(request: Request) -> Response:
        with library.lock:
            items = [copy.deepcopy(item) for item in library.items.values()]
        return JSONResponse(items)

    async def get_item(request: Request) -> Response:
        with library.lock:
            item = library.items.get(item_id(request))
            return JSONResponse(copy.deepcopy(item)) if item else not_found()

    def add(body: dict[str, Any]) -> Response:
        with library.lock:
            added = library.add(body, complete)
        return added if isinstance(added, Response) else JSONResponse(added)

    async def delete(request: Request) -> Response:
        with library.lock:
            if library.items.pop(item_id(request), None) is None:
                return not_found()
            forget(item_id(request))
        return Response(status_code=200)

    async def lookup(request: Request) -> Response:
        term = request.query_params.get("term", "")
        with library.lock:
            return JSONResponse(library.lookup(term) if term else [])

    return [
        Route(f"{API}/{resource}/lookup", guarded(lookup, guard)),
        Route(f"{API}/{resource}", guarded(list_items, guard)),
        Route(f"{API}/{resource}", guarded(json_body(add), guard), methods=["POST"]),
        Route(f"{API}/{resource}/{{id:int}}", guarded(get_item, guard)),
        Route(f"{API}/{resource}/{{id:int}}", guarded(delete, guard), methods=["DELETE"]),
    ]


def queue_record(
    record_id: int, title: str, quality: dict[str, Any], size: float, progress: float, added: datetime
) -> dict[str, Any]:
    """The download-client part of a queue record; ``progress`` is 0..1."""
    left = size * (1 - progress)
    rate = 2 * 1024 * 1024
    return {
        "id": record_id,
        "languages": [ENGLISH],
        "quality": {
            "quality": quality,
            "revision": {"version": 1, "real": 0, "isRepack": False},
        },
        "customFormats": [],
        "customFormatScore": 0,
        "size": size,
        "title": title,
        "estimatedCompletionTime": iso(datetime.now(UTC) + timedelta(seconds=left / rate)),
        "added": iso(added),
        "status": "completed" if left <= 0 else "downloading",
        "trackedDownloadStatus": "ok",
        "trackedDownloadState": "importPending" if left <= 0 else "downloading",
        "statusMessages": [],
        "errorMessage": None,
        "downloadId": f"SABnzbd_nzo_{record_id:08d}",
        "protocol": "usenet",
        "downloadClient": "SABnzbd",
        "downloadClientHasPostImportCategory": False,
        "indexer": "NZBgeek",
        "outputPath": f"/downloads/incomplete/{title}",
        "sizeleft": max(left, 0.0),
        "timeleft": str(timedelta(seconds=int(max(left, 0) / rate))).zfill(8),
    }
