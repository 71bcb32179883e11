"""AutoArr's MCP tool-call orchestrator: the client library and the shared core.

Everything a caller needs is exported here; the modules behind it are free to move.
"""

from orchestrator.aio.client import AsyncOrchestrator
from orchestrator.batch import Outcome
from orchestrator.client import Orchestrator
from orchestrator.config import ConfigError, ServerConfig, Settings, load_settings
from orchestrator.errors import (
    BrokerUnavailable,
    CallCancelled,
    CallFailed,
    CircuitBreakerOpenError,
    DeadlineExceeded,
    InvalidCall,
    NotEnqueued,
    OrchestratorError,
    OutcomeUnknown,
    ServerUnavailable,
    ToolReturnedError,
    UnknownServer,
    UpstreamUnavailable,
)
from orchestrator.results import ToolResult

__all__ = [
    "AsyncOrchestrator",
    "BrokerUnavailable",
    "CallCancelled",
    "CallFailed",
    "CircuitBreakerOpenError",
    "ConfigError",
    "DeadlineExceeded",
    "InvalidCall",
    "NotEnqueued",
    "Orchestrator",
    "OrchestratorError",
    "Outcome",
    "OutcomeUnknown",
    "ServerConfig",
    "ServerUnavailable",
    "Settings",
    "ToolResult",
    "ToolReturnedError",
    "UnknownServer",
    "UpstreamUnavailable",
    "load_settings",
]
