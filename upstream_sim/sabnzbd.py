"""Simulated SABnzbd 5.0.1: ``/api?mode=…`` with a queue that downloads over time into a history.

Reply shapes and quirks follow the captured real responses in ``data/sabnzbd/`` (numbers as
strings, ``cat`` in queue slots but ``category`` in history, HTTP 200 ``{"status": false}``
errors, plain-text 403 for a bad key, ``mode=version`` needing no key).
"""

from __future__ import annotations

import copy
import json
import secrets
import string
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from upstream_sim.app import Simulator, build
from upstream_sim.clock import Clock

DATA = Path(__file__).parent / "data" / "sabnzbd"
VERSION = "5.0.1"
SPEED_MB_S = 0.25
"""Download speed of the simulated news server, in MB/s: a 20 MB job completes in 80 s."""
NOTIFICATION_SECRETS = {
    "misc": {"socks5_proxy_url": "socks5://proxyuser:proxy-pass-4471@proxy.example:1080", "email_pwd": "mail-pw-5512"},
    "prowl": {"prowl_apikey": "prowl-key-1187"},
    "pushover": {"pushover_token": "pushover-token-2298", "pushover_userkey": "pushover-user-3309"},
    "pushbullet": {"pushbullet_apikey": "pushbullet-key-4410"},
    "apprise": {
        "apprise_urls": "discord://112233/discord-webhook-token-6621, mailto://bob:mail-pass-7732@example.com",
        "apprise_target_failed": "tgram://telegram-bot-token-8843/12345",
    },
}
"""Credentials a configured SABnzbd holds (the recorded config has them empty): the MCP server must never
return them."""
NOT_ON_SERVER = "Download failed - Not on your server(s) - https://sabnzbd.org/not-complete"


def _load(name: str, api_key: str) -> Any:
    text = (DATA / name).read_text().replace("<apikey>", api_key).replace("<nzbkey>", secrets.token_hex(16))
    return json.loads(text)


def _new_nzo_id() -> str:
    return "SABnzbd_nzo_" + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


def _size(mb: float) -> str:
    """``"20.1 MB"`` / ``"1.2 GB"`` / ``"0 B"``, as in queue slots and history."""
    if mb <= 0:
        return "0 B"
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb:.1f} MB"


def _duration(seconds: float) -> str:
    """``H:MM:SS``, or ``D:HH:MM:SS`` past a day."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}:{hours:02}:{minutes:02}:{secs:02}" if days else f"{hours}:{minutes:02}:{secs:02}"


@dataclass
class Job:
    """One queued download."""

    nzo_id: str
    filename: str
    cat: str
    mb: float
    mbleft: float
    time_added: int
    paused: bool = False
    fails: bool = False
    """Its articles are missing: it ends in history as Failed."""


class SabState:
    """Queue, history and config; ``tick()`` moves downloads forward by the time passed on ``clock``."""

    def __init__(self, api_key: str, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.lock = threading.Lock()
        self.speed_mb_s = SPEED_MB_S
        self.paused_all = False
        queue = _load("queue.json", api_key)["queue"]
        self.queue_header = {key: value for key, value in queue.items() if key != "slots"}
        now = int(self.clock.now())
        self.jobs = [
            Job(
                nzo_id=slot["nzo_id"],
                filename=slot["filename"],
                cat=slot["cat"],
                mb=float(slot["mb"]),
                mbleft=float(slot["mbleft"]),
                time_added=now - 300,
                paused=slot["status"] == "Paused",
            )
            for slot in queue["slots"]
        ]
        history = _load("history.json", api_key)["history"]
        self.history_header = {**history, "slots": []}
        """The recorded reply without its slots, keeping SABnzbd's key order (``slots`` sits mid-way)."""
        shift = now - max(slot["completed"] for slot in history["slots"]) - 60
        queued = {job.nzo_id for job in self.jobs}
        # The two captures are minutes apart: a job still queued in one is finished in the other.
        # SABnzbd holds a job in one place only, so the queue keeps it and history drops it.
        self.history = [slot for slot in history["slots"] if slot["nzo_id"] not in queued]
        for slot in self.history:
            slot["completed"] += shift
            slot["time_added"] += shift
        self.status = _load("fullstatus.json", api_key)["status"]
        self.config = _load("get_config.json", api_key)["config"]
        self.config["servers"][0]["username"] = "newsuser"
        self.config["servers"][0]["password"] = "news-server-password"
        for section, settings in NOTIFICATION_SECRETS.items():
            self.config[section].update(settings)
        self._last_tick = self.clock.now()

    def tick(self) -> None:
        """Download at ``speed_mb_s`` in queue order since the last tick; finished jobs move to history."""
        now = self.clock.now()
        budget = 0.0 if self.paused_all else (now - self._last_tick) * self.speed_mb_s
        self._last_tick = now
        for job in list(self.jobs):
            if job.paused or budget <= 0:
                continue
            taken = min(budget, job.mbleft)
            job.mbleft -= taken
            budget -= taken
            if job.mbleft <= 0.005:
                self.jobs.remove(job)
                self.history.insert(0, self._history_slot(job, int(now)))

    def _history_slot(self, job: Job, completed: int) -> dict[str, Any]:
        template = copy.deepcopy(self.history[-1] if self.history else {})
        failed = job.fails
        done_bytes = 0 if failed else int(job.mb * 1024 * 1024)
        folder = "incomplete" if failed else "complete"
        template.update(
            completed=completed,
            name=job.filename,
            nzb_name=f"{job.filename}.nzb",
            category=job.cat,
            status="Failed" if failed else "Completed",
            nzo_id=job.nzo_id,
            storage=f"/downloads/{folder}/{job.filename}",
            path=f"/downloads/incomplete/{job.filename}",
            download_time=max(completed - job.time_added, 0),
            downloaded=done_bytes,
            bytes=done_bytes,
            fail_message=NOT_ON_SERVER if failed else "",
            time_added=job.time_added,
            size=_size(0 if failed else job.mb),
            retry=failed,
            stage_log=[{"name": "Source", "actions": [f"{job.filename}.nzb"]}],
        )
        return template

    def queue(self, start: int, limit: int, nzo_ids: list[str] | None = None) -> dict[str, Any]:
        """``mode=queue``: ``noofslots`` counts every job (or the ``nzo_ids`` matches), ``noofslots_total``
        the jobs not paused one by one, as SABnzbd counts them; a ``start`` past the end answers from 0."""
        active = [job for job in self.jobs if not job.paused]
        mb = sum(job.mb for job in active)
        mbleft = sum(job.mbleft for job in active)
        speed = 0.0 if self.paused_all or not active else self.speed_mb_s
        kbpersec = speed * 1024
        slots, cumulative = [], 0.0
        for index, job in enumerate(self.jobs):
            if not job.paused:
                cumulative += job.mbleft
            slots.append(self._slot(index, job, cumulative, speed))
        if nzo_ids:
            slots = [slot for slot in slots if slot["nzo_id"] in nzo_ids]
        if start >= len(slots):
            start = 0
        shown = slots[start : start + limit] if limit else slots[start:]
        return {
            **self.queue_header,
            "paused": self.paused_all,
            "kbpersec": f"{kbpersec:.2f}",
            "speed": f"{round(kbpersec)} K" if kbpersec else "0",
            "mbleft": f"{mbleft:.2f}",
            "mb": f"{mb:.2f}",
            "sizeleft": _size(mbleft),
            "size": _size(mb),
            "noofslots_total": len(active),
            "noofslots": len(slots),
            "start": start,
            "limit": limit,
            "finish": start + limit if limit else 0,
            "status": "Paused" if self.paused_all else ("Downloading" if speed else "Idle"),
            "timeleft": _duration(mbleft / speed) if speed else "0:00:00",
            "slots": shown,
        }

    def _slot(self, index: int, job: Job, cumulative_mb: float, speed: float) -> dict[str, Any]:
        status = "Queued" if self.paused_all else ("Paused" if job.paused else "Downloading")
        return {
            "index": index,
            "nzo_id": job.nzo_id,
            "unpackopts": "3",
            "priority": "Normal",
            "script": "None",
            "filename": job.filename,
            "labels": [],
            "password": "",
            "cat": job.cat,
            "mbleft": f"{job.mbleft:.2f}",
            "mb": f"{job.mb:.2f}",
            "size": _size(job.mb),
            "sizeleft": _size(job.mbleft),
            "percentage": str(int(100 * (job.mb - job.mbleft) / job.mb)) if job.mb else "0",
            "mbmissing": "0.00",
            "direct_unpack": None,
            "status": status,
            "timeleft": _duration(cumulative_mb / speed) if speed and status == "Downloading" else "0:00:00",
            "avg_age": "730d",
            "time_added": job.time_added,
        }

    def history_page(self, start: int, limit: int, failed_only: bool, category: str | None) -> dict[str, Any]:
        slots = [
            slot
            for slot in self.history
            if (not failed_only or slot["status"] == "Failed") and (category is None or slot["category"] == category)
        ]
        total = sum(slot["bytes"] for slot in self.history) / (1024 * 1024)
        size = f"{total:.1f} M" if total else "0"
        return {
            **self.history_header,
            "total_size": size,
            "month_size": size,
            "week_size": size,
            "day_size": size,
            "slots": slots[start : start + limit] if limit else slots[start:],
            "noofslots": len(slots),
        }

    def retry(self, nzo_id: str) -> dict[str, Any]:
        """A Failed job re-enters the queue under a new id; its history entry goes at once."""
        slot = next((s for s in self.history if s["nzo_id"] == nzo_id and s["status"] == "Failed"), None)
        if slot is None:
            return {"status": False, "error": "item does not exist"}
        self.history.remove(slot)
        job = Job(
            nzo_id=_new_nzo_id(),
            filename=slot["name"],
            cat=slot["category"],
            mb=12.5,
            mbleft=12.5,
            time_added=int(self.clock.now()),
            fails=True,
        )
        self.jobs.append(job)
        return {"status": True, "nzo_id": job.nzo_id}

    def queue_action(self, name: str, value: str) -> dict[str, Any]:
        """``mode=queue&name=pause|resume|delete``; pause and resume never check that the id exists."""
        if not value:
            if name == "delete":
                return {"status": False, "error": "expects one parameter"}
            return {"status": False, "nzo_ids": False}
        ids = value.split(",")
        if name == "delete":
            gone = [job for job in self.jobs if job.nzo_id in ids]
            self.jobs = [job for job in self.jobs if job not in gone]
            return {"status": bool(gone), "nzo_ids": [job.nzo_id for job in gone]}
        for job in self.jobs:
            if job.nzo_id in ids:
                job.paused = name == "pause"
        return {"status": True, "nzo_ids": ids}

    def full_status(self) -> dict[str, Any]:
        """``mode=fullstatus``; while nothing downloads, the news servers hold no connections (SABnzbd then
        reports their address as ``null`` and speed as ``"0"``)."""
        status = {**self.status, "paused": self.paused_all, "folders": [job.filename for job in self.jobs]}
        if self.paused_all or all(job.paused for job in self.jobs):
            status["servers"] = [
                {**server, "serveractiveconn": 0, "serverconnections": [], "serveripaddress": None,
                 "servercanonname": None, "serverbps": "0"}
                for server in status["servers"]
            ]  # fmt: skip
        return status

    def get_config(self, section: str | None, keyword: str | None) -> dict[str, Any]:
        if section is None:
            return self.config
        if section not in self.config:
            return {}
        value = self.config[section]
        if keyword is not None and isinstance(value, dict):
            return {section: {keyword: value[keyword]}} if keyword in value else {}
        return {section: value}

    def set_config(self, section: str, keyword: str, value: str) -> dict[str, Any]:
        stored = self.config.get(section)
        if not isinstance(stored, dict) or keyword not in stored:
            return {"status": False, "error": "Config item does not exist"}
        old = stored[keyword]
        if isinstance(old, bool):
            stored[keyword] = value.lower() in ("1", "true", "on", "yes")
        elif isinstance(old, int):
            stored[keyword] = int(value) if value.lstrip("-").isdigit() else old
        else:
            stored[keyword] = value
        return {"config": {section: {keyword: stored[keyword]}}}


def _number(params: Any, name: str) -> int:
    raw = params.get(name, "0")
    return int(raw) if raw.isdigit() else 0


def _answer(state: SabState, params: Any) -> dict[str, Any]:
    mode = params.get("mode", "")
    name = params.get("name")
    if mode == "queue" and name in ("pause", "resume", "delete"):
        return state.queue_action(name, params.get("value", ""))
    if mode == "queue":
        nzo_ids = [nzo_id for nzo_id in params.get("nzo_ids", "").split(",") if nzo_id]
        return {"queue": state.queue(_number(params, "start"), _number(params, "limit"), nzo_ids)}
    if mode == "history":
        failed_only = params.get("failed_only") == "1"
        page = state.history_page(
            _number(params, "start"), _number(params, "limit"), failed_only, params.get("category")
        )
        return {"history": page}
    if mode in ("pause", "resume"):
        state.paused_all = mode == "pause"
        return {"status": True}
    if mode == "retry":
        return state.retry(params.get("value", ""))
    if mode in ("fullstatus", "status"):
        return {"status": state.full_status()}
    if mode == "get_config":
        return {"config": state.get_config(params.get("section"), params.get("keyword"))}
    if mode == "set_config":
        return state.set_config(params.get("section", ""), params.get("keyword", ""), params.get("value", ""))
    return {"status": False, "error": "not implemented"}


def create(api_key: str, clock: Clock | None = None) -> Simulator:
    """The SABnzbd simulator answering ``/api`` for ``api_key``."""
    state = SabState(api_key, clock)

    async def api(request: Request) -> Response:
        params = request.query_params
        if params.get("mode") == "version":
            return JSONResponse({"version": VERSION})
        given = params.get("apikey", "")
        if not given:
            return PlainTextResponse("API Key Required", status_code=403, media_type="text/html")
        if not secrets.compare_digest(given, api_key):
            return PlainTextResponse("API Key Incorrect", status_code=403, media_type="text/html")
        with state.lock:
            state.tick()
            return JSONResponse(_answer(state, params))

    return build("sabnzbd", [Route("/api", api, methods=["GET", "POST"])], state)
