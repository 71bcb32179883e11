"""SABnzbd results: AutoArr returns SABnzbd's JSON with no envelope, so these mirror its top-level keys."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Queue(BaseModel):
    """``mode=queue``: totals and slots (numbers are strings, as SABnzbd sends them)."""

    queue: dict[str, Any]


class History(BaseModel):
    """``mode=history``: totals and finished jobs, newest first."""

    history: dict[str, Any]


class FullStatus(BaseModel):
    """``mode=fullstatus`` with the API key and passwords masked."""

    status: dict[str, Any]


class Config(BaseModel):
    """``mode=get_config`` / ``set_config`` with the API keys and passwords masked."""

    config: dict[str, Any]


class Ack(BaseModel):
    """Reply of queue-wide pause and resume."""

    status: bool


class JobAck(BaseModel):
    """Reply of a per-job pause, resume or delete: the ids acted on."""

    status: bool
    nzo_ids: list[str]


class RetryAck(BaseModel):
    """Reply of a retry: the job re-enters the queue under a new id."""

    status: bool
    nzo_id: str
