"""Build a simulator's Starlette app: fault and stats middleware, auth guard, and the ``/__sim__`` routes."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from upstream_sim.faults import Faults, Stats

SIM_PREFIX = "/__sim__"
Guard = Callable[[Request], Response | None]
"""Returns the refusal to send for a request without valid credentials, or ``None`` to let it through."""
Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass
class Simulator:
    """A service's app with the knobs a handle needs; ``state`` is the service's in-memory data."""

    service: str
    app: Starlette
    control: FaultControl
    state: Any


class FaultControl:
    """Holds the current ``Faults`` (replaced whole, so readers never see a half-applied change) and ``Stats``."""

    def __init__(self) -> None:
        self.faults = Faults()
        self.stats = Stats()


class FaultMiddleware:
    """Counts requests, then delays or fails them according to the current faults."""

    def __init__(self, app: ASGIApp, control: FaultControl) -> None:
        self.app = app
        self.control = control

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(SIM_PREFIX):
            await self.app(scope, receive, send)
            return
        stats = self.control.stats
        stats.enter(path)
        try:
            faults = self.control.faults
            delay = faults.delay_ms(path)
            if delay:
                await asyncio.sleep(delay / 1000)
            status = faults.failure_status()
            if status is None:
                await self.app(scope, receive, send)
            else:
                await PlainTextResponse(f"simulated fault: HTTP {status}", status_code=status)(scope, receive, send)
        finally:
            stats.leave()


def guarded(endpoint: Endpoint, guard: Guard) -> Endpoint:
    """Run ``endpoint`` only for requests ``guard`` accepts."""

    async def checked(request: Request) -> Response:
        return guard(request) or await endpoint(request)

    return checked


def build(service: str, routes: list[BaseRoute], state: Any) -> Simulator:
    """Wrap the service routes with the fault middleware and add the control routes."""
    control = FaultControl()
    app = Starlette(routes=[*_control_routes(control), *routes])
    app.add_middleware(FaultMiddleware, control=control)
    return Simulator(service=service, app=app, control=control, state=state)


def _control_routes(control: FaultControl) -> list[Route]:
    async def faults(request: Request) -> Response:
        if request.method in ("POST", "PUT"):
            try:
                control.faults = control.faults.merged(await request.json())
            except (ValueError, TypeError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(control.faults.to_dict())

    async def stats(request: Request) -> Response:
        if request.method == "DELETE":
            control.stats.reset()
        return JSONResponse(control.stats.snapshot())

    return [
        Route(f"{SIM_PREFIX}/faults", guarded(faults, _loopback_only), methods=["GET", "POST", "PUT"]),
        Route(f"{SIM_PREFIX}/stats", guarded(stats, _loopback_only), methods=["GET", "DELETE"]),
    ]


def _loopback_only(request: Request) -> Response | None:
    """The control routes need no key, so they answer loopback clients only."""
    host = request.client.host if request.client else ""
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return PlainTextResponse("the simulator's control routes answer loopback clients only", status_code=403)
