"""Simulated Plex Media Server answering JSON (``Accept: application/json``) wrapped in ``MediaContainer``."""

from __future__ import annotations

import copy
import secrets
import threading
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from upstream_sim.app import Simulator, build, guarded
from upstream_sim.clock import Clock

VERSION = "1.41.3.9314-a0bfb8370"
MACHINE_ID = "5d3f2c0b9e8a7f6e5d4c3b2a19081726354a5b6c"
NOT_FOUND = "<html><head><title>Not Found</title></head></html>"
HUB_TITLES = {"movie": "Movies", "show": "Shows"}
"""The hubs ``/hubs/search`` groups results into, in Plex's order."""
UNAUTHORIZED = "<html><head><title>Unauthorized</title></head><body><h1>401 Unauthorized</h1></body></html>"
# section key, title, type, agent, scanner, location, items: (title, year, type, duration in minutes)
SECTIONS = [
    ("1", "Movies", "movie", "tv.plex.agents.movie", "Plex Movie", "/data/movies",
     [("Dune: Part Two", 2024, 166), ("Oppenheimer", 2023, 180), ("Arrival", 2016, 116)]),
    ("2", "TV Shows", "show", "tv.plex.agents.series", "Plex TV Series", "/data/tv",
     [("Breaking Bad", 2008, 47), ("Severance", 2022, 52), ("The Expanse", 2015, 44)]),
]  # fmt: skip


def _metadata(key: str, kind: str, rating_key: int, title: str, year: int, minutes: int, added: int) -> dict:
    return {
        "ratingKey": str(rating_key),
        "key": f"/library/metadata/{rating_key}" + ("/children" if kind == "show" else ""),
        "guid": f"plex://{kind}/{rating_key:024x}",
        "librarySectionID": int(key),
        "type": kind,
        "title": title,
        "summary": f"{title} ({year}).",
        "rating": 8.0,
        "audienceRating": 8.5,
        "year": year,
        "thumb": f"/library/metadata/{rating_key}/thumb/{added}",
        "art": f"/library/metadata/{rating_key}/art/{added}",
        "duration": minutes * 60_000,
        "addedAt": added,
        "updatedAt": added,
    }


class PlexState:
    """Libraries and their items, playing sessions and watch history."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.lock = threading.Lock()
        now = int(self.clock.now())
        self.started = now
        self.sections: dict[str, dict[str, Any]] = {}
        self.items: dict[str, list[dict[str, Any]]] = {}
        rating_key = 100
        for key, title, kind, agent, scanner, path, items in SECTIONS:
            self.sections[key] = {
                "allowSync": True,
                "art": f"/:/resources/{kind}-fanart.jpg",
                "key": key,
                "type": kind,
                "title": title,
                "agent": agent,
                "scanner": scanner,
                "language": "en-US",
                "uuid": secrets.token_hex(4) + "-0000-4000-8000-" + secrets.token_hex(6),
                "updatedAt": now - 86400,
                "createdAt": now - 86400 * 400,
                "scannedAt": now - 3600,
                "content": True,
                "directory": True,
                "contentChangedAt": 1000,
                "hidden": 0,
                "refreshing": False,
                "Location": [{"id": int(key), "path": path}],
            }
            self.items[key] = []
            for offset, (name, year, minutes) in enumerate(items):
                rating_key += 1
                added = now - 86400 * (30 - 7 * offset)
                self.items[key].append(_metadata(key, kind, rating_key, name, year, minutes, added))

    def all_items(self) -> list[dict[str, Any]]:
        return [item for items in self.items.values() for item in items]

    def item(self, rating_key: str) -> dict[str, Any] | None:
        return next((item for item in self.all_items() if item["ratingKey"] == rating_key), None)

    def sessions(self) -> list[dict[str, Any]]:
        """One stream, whose position advances with simulated time."""
        movie = self.items["1"][0]
        offset = min(int(self.clock.now() - self.started) * 1000 + 600_000, movie["duration"])
        return [
            {
                **copy.deepcopy(movie),
                "sessionKey": "1",
                "viewOffset": offset,
                "User": {"id": "1", "thumb": "https://plex.tv/users/1/avatar", "title": "alice"},
                "Player": {
                    "address": "192.0.2.20",
                    "device": "Shield Android TV",
                    "machineIdentifier": "player-shield-1",
                    "model": "darcy",
                    "platform": "Android",
                    "platformVersion": "11",
                    "product": "Plex for Android (TV)",
                    "profile": "Android",
                    "state": "playing",
                    "title": "Living Room",
                    "vendor": "NVIDIA",
                    "version": "10.20.1",
                    "local": True,
                    "relayed": False,
                    "secure": True,
                    "userID": 1,
                },
                "Session": {"id": secrets.token_hex(8), "bandwidth": 20000, "location": "lan"},
            }
        ]

    def history(self) -> list[dict[str, Any]]:
        watched = sorted(self.all_items(), key=lambda item: item["addedAt"], reverse=True)
        return [
            {
                "historyKey": f"/status/sessions/history/{index}",
                "key": item["key"],
                "ratingKey": item["ratingKey"],
                "title": item["title"],
                "type": item["type"],
                "thumb": item["thumb"],
                "viewedAt": item["addedAt"] + 86400,
                "accountID": 1,
                "deviceID": 2,
            }
            for index, item in enumerate(watched, start=1)
        ]


def _window(request: Request, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Apply ``X-Plex-Container-Start``/``-Size`` (query or header) and wrap in ``MediaContainer``."""

    def number(name: str) -> int | None:
        raw = request.query_params.get(name) or request.headers.get(name)
        return int(raw) if raw and raw.isdigit() else None

    start = number("X-Plex-Container-Start") or 0
    size = number("X-Plex-Container-Size")
    shown = items[start : start + size] if size is not None else items[start:]
    container: dict[str, Any] = {"size": len(shown), "totalSize": len(items), "offset": start}
    if shown:
        container["Metadata"] = shown
    return {"MediaContainer": container}


def _matches(state: PlexState, request: Request) -> list[dict[str, Any]]:
    """Items whose title contains ``query``, within ``sectionId`` if given (shared by ``/search`` and
    ``/hubs/search``)."""
    query = request.query_params.get("query", "").lower()
    section = request.query_params.get("sectionId")
    with state.lock:
        pool = state.items.get(section, []) if section else state.all_items()
        return [copy.deepcopy(item) for item in pool if query and query in item["title"].lower()]


def _limited(request: Request, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """At most ``limit`` items: for the whole reply of ``/search``, for each hub of ``/hubs/search``."""
    limit = request.query_params.get("limit")
    return items[: int(limit)] if limit and limit.isdigit() else items


def create(token: str, clock: Clock | None = None) -> Simulator:
    """The Plex simulator accepting ``token`` as ``X-Plex-Token`` (header or query)."""
    state = PlexState(clock)

    def guard(request: Request) -> Response | None:
        given = request.headers.get("x-plex-token") or request.query_params.get("X-Plex-Token") or ""
        if given and secrets.compare_digest(given, token):
            return None
        return HTMLResponse(UNAUTHORIZED, status_code=401)

    async def root(request: Request) -> Response:
        return JSONResponse(
            {
                "MediaContainer": {
                    "size": 0,
                    "friendlyName": "AutoArr Plex",
                    "machineIdentifier": MACHINE_ID,
                    "version": VERSION,
                    "platform": "Linux",
                    "platformVersion": "6.1",
                    "myPlex": True,
                    "myPlexUsername": "alice@example.com",
                    "myPlexMappingState": "mapped",
                    "myPlexSigninState": "ok",
                    "transcoderActiveVideoSessions": 0,
                    "updatedAt": state.started,
                }
            }
        )

    async def identity(request: Request) -> Response:
        container = {"size": 0, "claimed": True, "machineIdentifier": MACHINE_ID, "version": VERSION}
        return JSONResponse({"MediaContainer": container})

    async def sections(request: Request) -> Response:
        with state.lock:
            found = copy.deepcopy(list(state.sections.values()))
        return JSONResponse({"MediaContainer": {"size": len(found), "title1": "Plex Library", "Directory": found}})

    async def section_items(request: Request) -> Response:
        with state.lock:
            items = state.items.get(request.path_params["key"])
            if items is None:
                return HTMLResponse(NOT_FOUND, status_code=404)
            return JSONResponse(_window(request, copy.deepcopy(items)))

    async def refresh(request: Request) -> Response:
        with state.lock:
            section = state.sections.get(request.path_params["key"])
            if section is None:
                return HTMLResponse(NOT_FOUND, status_code=404)
            section.update(refreshing=True, scannedAt=int(state.clock.now()))
        return Response(status_code=200)

    async def refresh_metadata(request: Request) -> Response:
        with state.lock:
            item = state.item(request.path_params["key"])
            if item is None:
                return HTMLResponse(NOT_FOUND, status_code=404)
            item["updatedAt"] = int(state.clock.now())
        return Response(status_code=200)

    async def hub_search(request: Request) -> Response:
        """``/hubs/search``: one hub per item type that has matches, each listing at most ``limit`` items."""
        found = _matches(state, request)
        hubs = []
        for kind, title in HUB_TITLES.items():
            matched = [item for item in found if item["type"] == kind]
            shown = _limited(request, matched)
            if shown:
                hubs.append({"hubIdentifier": kind, "title": title, "type": kind, "size": len(shown),
                             "more": len(shown) < len(matched), "Metadata": shown})  # fmt: skip
        return JSONResponse({"MediaContainer": {"size": len(hubs), "Hub": hubs}})

    async def recently_added(request: Request) -> Response:
        with state.lock:
            items = sorted(copy.deepcopy(state.all_items()), key=lambda i: i["addedAt"], reverse=True)
        return JSONResponse(_window(request, items))

    async def on_deck(request: Request) -> Response:
        with state.lock:
            deck = [dict(item, viewOffset=item["duration"] // 3) for item in copy.deepcopy(state.items["1"][1:])]
        return JSONResponse(_window(request, deck))

    async def sessions(request: Request) -> Response:
        with state.lock:
            return JSONResponse(_window(request, state.sessions()))

    async def history(request: Request) -> Response:
        with state.lock:
            return JSONResponse(_window(request, state.history()))

    async def search(request: Request) -> Response:
        found = _limited(request, _matches(state, request))
        container: dict[str, Any] = {"size": len(found)}
        if found:
            container["Metadata"] = found
        return JSONResponse({"MediaContainer": container})

    routes = [
        Route("/", guarded(root, guard)),
        Route("/identity", identity),
        Route("/library/sections", guarded(sections, guard)),
        Route("/library/sections/{key}/all", guarded(section_items, guard)),
        Route("/library/sections/{key}/refresh", guarded(refresh, guard), methods=["GET", "PUT"]),
        Route("/library/metadata/{key}/refresh", guarded(refresh_metadata, guard), methods=["PUT"]),
        Route("/hubs/search", guarded(hub_search, guard)),
        Route("/library/recentlyAdded", guarded(recently_added, guard)),
        Route("/library/onDeck", guarded(on_deck, guard)),
        Route("/status/sessions", guarded(sessions, guard)),
        Route("/status/sessions/history/all", guarded(history, guard)),
        Route("/search", guarded(search, guard)),
    ]
    return build("plex", routes, state)
