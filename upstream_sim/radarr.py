"""Simulated Radarr v5 (``/api/v3``): movies, lookup (by term and by TMDb id), add, delete, wanted, calendar, queue,
commands, quality profiles, root folders, tags and languages.

Release dates are placed around the simulator's start time, so the calendar always has an
upcoming release and the wanted list always has a missing movie.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from upstream_sim import arr
from upstream_sim.app import Simulator, build, guarded
from upstream_sim.clock import Clock

VERSION = "5.14.0.9383"

# title, tmdbId, imdbId, year, studio, days from now to the cinema release
CATALOG = [
    ("Dune: Part Two", 693134, "tt15239678", 2024, "Legendary Pictures", -990),
    ("Oppenheimer", 872585, "tt15398776", 2023, "Syncopy", -1220),
    ("The Batman", 414906, "tt1877830", 2022, "DC Films", -1700),
    ("Project Hail Mary", 687163, "tt12042730", 2026, "Amazon MGM Studios", 1),
    ("Arrival", 329865, "tt2543164", 2016, "FilmNation Entertainment", -3700),
    ("Blade Runner 2049", 335984, "tt1856101", 2017, "Alcon Entertainment", -3330),
    ("Interstellar", 157336, "tt0816692", 2014, "Syncopy", -4400),
]
LIBRARY = {693134: True, 872585: True, 414906: False, 687163: False}
"""tmdb id -> has a file, for the movies in the library at start; the rest are only found by lookup."""
FILE_SIZE = 8_000_000_000
QUALITY = {"id": 19, "name": "Bluray-2160p", "source": "bluray", "resolution": 2160, "modifier": "none"}
QUALITIES = [
    {"id": 1, "name": "SDTV", "source": "tv", "resolution": 480, "modifier": "none"},
    {"id": 3, "name": "WEBDL-1080p", "source": "webdl", "resolution": 1080, "modifier": "none"},
    {"id": 7, "name": "Bluray-1080p", "source": "bluray", "resolution": 1080, "modifier": "none"},
    QUALITY,
]
ROOT = "/movies"


def _movie(title: str, tmdb: int, imdb: str, year: int, studio: str, release: datetime) -> dict[str, Any]:
    slug = f"{title.lower().replace(':', '').replace(' ', '-')}-{tmdb}"
    return {
        "id": 0,
        "title": title,
        "originalTitle": title,
        "originalLanguage": arr.ENGLISH,
        "sortTitle": title.lower().removeprefix("the "),
        "sizeOnDisk": 0,
        "status": "released" if release < datetime.now(UTC) else "announced",
        "overview": f"{title} ({year}).",
        "inCinemas": arr.iso(release),
        "physicalRelease": arr.iso(release + timedelta(days=90)),
        "digitalRelease": arr.iso(release + timedelta(days=45)),
        "images": [{"coverType": "poster", "url": None, "remoteUrl": f"https://image.tmdb.org/t/p/{tmdb}.jpg"}],
        "website": "",
        "year": year,
        "youTubeTrailerId": "",
        "studio": studio,
        "path": None,
        "qualityProfileId": 1,
        "hasFile": False,
        "movieFileId": 0,
        "monitored": True,
        "minimumAvailability": "released",
        "isAvailable": release < datetime.now(UTC),
        "folderName": f"{title} ({year})",
        "runtime": 150,
        "cleanTitle": slug.replace("-", ""),
        "imdbId": imdb,
        "tmdbId": tmdb,
        "titleSlug": slug,
        "rootFolderPath": None,
        "certification": "PG-13",
        "genres": ["Science Fiction"],
        "tags": [],
        "added": "0001-01-01T00:00:00Z",
        "ratings": {
            "imdb": {"votes": 500000, "value": 8.1, "type": "user"},
            "tmdb": {"votes": 9000, "value": 8.0, "type": "user"},
        },
        "popularity": 100.0,
        "statistics": {"movieFileCount": 0, "sizeOnDisk": 0, "releaseGroups": []},
    }


class RadarrState:
    """Movies, the download queue and posted commands."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.started = datetime.fromtimestamp(self.clock.now(), UTC)
        catalog = [_movie(*row[:5], self.started + timedelta(days=row[5])) for row in CATALOG]
        profiles = arr.quality_profiles(QUALITIES, {3, 7})
        self.library = arr.Library(self.clock, [], catalog, "tmdbId", profiles, (ROOT,))
        self.commands = arr.Commands(self.clock)
        for tmdb in LIBRARY:
            self.library.add({"tmdbId": tmdb, "qualityProfileId": 1, "rootFolderPath": ROOT}, self.complete)

    def complete(self, movie: dict[str, Any]) -> None:
        """Movies in the library at start may have a file; added ones start without."""
        if LIBRARY.get(movie["tmdbId"]) and len(self.library.items) < len(LIBRARY):
            movie.update(hasFile=True, movieFileId=movie["id"], sizeOnDisk=FILE_SIZE)
            movie["statistics"] = {"movieFileCount": 1, "sizeOnDisk": FILE_SIZE, "releaseGroups": ["GRP"]}

    def missing(self) -> list[dict[str, Any]]:
        return [m for m in self.library.items.values() if m["monitored"] and not m["hasFile"] and m["isAvailable"]]

    def queue(self) -> list[dict[str, Any]]:
        """A download of each missing movie, progressing with simulated time."""
        elapsed = self.clock.now() - self.started.timestamp()
        records = []
        for index, movie in enumerate(self.missing(), start=1):
            title = f"{movie['title'].replace(' ', '.')}.{movie['year']}.2160p.UHD.BluRay.x265-GRP"
            record = arr.queue_record(
                index, title, QUALITY, float(FILE_SIZE), min(0.35 + elapsed / 900, 1.0), self.started
            )
            record["movieId"] = movie["id"]
            records.append(record)
        return records


def create(api_key: str, clock: Clock | None = None) -> Simulator:
    """The Radarr simulator answering ``/api/v3`` for ``api_key``."""
    state = RadarrState(clock)
    guard = arr.key_guard(api_key)

    async def wanted(request: Request) -> Response:
        with state.library.lock:
            return JSONResponse(arr.page(request, state.missing(), "movieMetadata.sortTitle"))

    async def lookup_tmdb(request: Request) -> Response:
        """One movie by TMDb id (the library's copy if it has it); 404 when TMDb has no such movie."""
        wanted = request.query_params.get("tmdbId", "")
        with state.library.lock:
            found = state.library.lookup(f"tmdb:{wanted}") if wanted.isdigit() else []
        return JSONResponse(found[0]) if found else arr.not_found()

    async def calendar(request: Request) -> Response:
        start, end = arr.calendar_window(request, state.clock)
        with state.library.lock:
            found = [
                m
                for m in state.library.items.values()
                if any(start <= arr.parse_time(m[k]) < end for k in ("inCinemas", "digitalRelease", "physicalRelease"))
            ]
        return JSONResponse(found)

    async def queue(request: Request) -> Response:
        with state.library.lock:
            return JSONResponse(arr.page(request, state.queue(), "timeleft"))

    def forget(movie_id: int) -> None:
        """Radarr keeps nothing else per movie."""

    routes = [
        *arr.shared_routes("Radarr", VERSION, state.commands, guard),
        Route(f"{arr.API}/movie/lookup/tmdb", guarded(lookup_tmdb, guard)),
        *arr.library_routes("movie", state.library, guard, state.complete, forget),
        *arr.settings_routes(state.library, guard),
        Route(f"{arr.API}/wanted/missing", guarded(wanted, guard)),
        Route(f"{arr.API}/calendar", guarded(calendar, guard)),
        Route(f"{arr.API}/queue", guarded(queue, guard)),
    ]
    return build("radarr", routes, state)
