"""The ``sabnzbd`` MCP server: AutoArr's 11 SABnzbd tools over ``GET /api?mode=…``."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from media_mcp.common.inputs import Text
from media_mcp.common.runner import ServiceSpec
from media_mcp.common.server import DESTROY, OVERWRITE, READ, SET_STATE, TRIGGER, MediaServer
from media_mcp.common.upstream import Upstream
from media_mcp.sabnzbd import api
from media_mcp.sabnzbd.models import Ack, Config, FullStatus, History, JobAck, Queue, RetryAck

Start = Annotated[int, Field(ge=0, description="Index of the first slot to return.")]
Limit = Annotated[int | None, Field(gt=0, description="Most slots to return.")]
NzoId = Annotated[Text, Field(description="SABnzbd job id, e.g. SABnzbd_nzo_abc123.")]


def build(upstream: Upstream) -> MediaServer:
    """Create the server with its tools bound to ``upstream``."""
    server = MediaServer(name="sabnzbd", log_level="WARNING")

    @server.tool(name="sabnzbd_get_queue", annotations=READ)
    async def get_queue(start: Start = 0, limit: Limit = None) -> Queue:
        """Current download queue: speed, totals and one slot per job."""
        return Queue.model_validate(await api.call(upstream, "queue", start=start, limit=limit))

    @server.tool(name="sabnzbd_get_history", annotations=READ)
    async def get_history(
        start: Start = 0, limit: Limit = None, failed_only: bool = False, category: str | None = None
    ) -> History:
        """Finished jobs, newest first; optionally only failed ones or one category."""
        payload = await api.call(
            upstream,
            "history",
            start=start,
            limit=limit,
            failed_only=api.flag(failed_only),
            category=category,
        )
        return History.model_validate(payload)

    @server.tool(name="sabnzbd_retry_download", annotations=TRIGGER)
    async def retry_download(nzo_id: NzoId) -> RetryAck:
        """Put a failed job back in the queue; SABnzbd gives it a new nzo_id."""
        return RetryAck.model_validate(await api.call(upstream, "retry", value=nzo_id))

    @server.tool(name="sabnzbd_pause_queue", annotations=SET_STATE)
    async def pause_queue() -> Ack:
        """Pause all downloading."""
        return Ack.model_validate(await api.call(upstream, "pause"))

    @server.tool(name="sabnzbd_resume_queue", annotations=SET_STATE)
    async def resume_queue() -> Ack:
        """Resume all downloading."""
        return Ack.model_validate(await api.call(upstream, "resume"))

    @server.tool(name="sabnzbd_pause_download", annotations=SET_STATE)
    async def pause_download(nzo_id: NzoId) -> JobAck:
        """Pause one job in the queue."""
        return JobAck.model_validate(await api.queued_job_action(upstream, "pause", nzo_id))

    @server.tool(name="sabnzbd_resume_download", annotations=SET_STATE)
    async def resume_download(nzo_id: NzoId) -> JobAck:
        """Resume one paused job."""
        return JobAck.model_validate(await api.queued_job_action(upstream, "resume", nzo_id))

    @server.tool(name="sabnzbd_delete_download", annotations=DESTROY)
    async def delete_download(nzo_id: NzoId, delete_files: bool = False) -> JobAck:
        """Remove a job from the queue, and its downloaded files if asked."""
        payload = await api.call(upstream, "queue", name="delete", value=nzo_id, del_files=api.flag(delete_files))
        return JobAck.model_validate(payload)

    @server.tool(name="sabnzbd_get_status", annotations=READ)
    async def get_status() -> FullStatus:
        """Full server status: version, disk space, servers, warnings (secrets masked)."""
        return FullStatus.model_validate(await api.call(upstream, "fullstatus"))

    @server.tool(name="sabnzbd_get_config", annotations=READ)
    async def get_config(section: str | None = None) -> Config:
        """Configuration, whole or one section (misc, servers, categories, …), secrets masked."""
        return Config.model_validate(await api.call(upstream, "get_config", section=section))

    @server.tool(name="sabnzbd_set_config", annotations=OVERWRITE)
    async def set_config(section: Text, keyword: Text, value: str) -> Config:
        """Set one configuration value; SABnzbd answers with the stored value."""
        payload = await api.call(upstream, "set_config", section=section, keyword=keyword, value=value)
        return Config.model_validate(payload)

    return server


SPEC = ServiceSpec(name="sabnzbd", secret_var="SABNZBD_API_KEY", auth=api.auth, build=build)
