"""AutoArr compatibility: the seed orchestrator's API, exceptions and configuration.

AutoArr switches from its in-process orchestrator by changing an import::

    from orchestrator.compat import (MCPOrchestrator, MCPOrchestratorConfig, ServerConfig,
                                     MCPConnectionError, MCPTimeoutError, MCPToolError, ...)

and by giving the workers ``worker_environment(config)`` (the servers' URLs and API keys, and the
tunables): secrets never travel in a task message. ``orchestrator.compat.config`` maps each seed
setting (its module docstring has the table); ``orchestrator.compat.facade`` has the facade.
The exception names are the same classes as ``orchestrator.errors``' hierarchy, not copies;
``orchestrator.compat.exceptions`` is the module AutoArr uses as its
``autoarr.shared.core.exceptions`` (its docstring has the HTTP mapping). Result shapes:
``orchestrator.compat.shapes``; the seed's other attributes and loops: ``orchestrator.compat.surface``.
"""

from orchestrator.compat.config import (
    SECRET_VARIABLES,
    MCPOrchestratorConfig,
    SeedConfigError,
    SeedConfigWarning,
    SeedMapping,
    ServerConfig,
    map_seed_config,
    worker_environment,
    write_worker_env_file,
)
from orchestrator.compat.exceptions import (
    CircuitBreakerOpenError,
    MCPConnectionError,
    MCPOrchestratorError,
    MCPTimeoutError,
    MCPToolError,
    ParamsNotADict,
    UpstreamConnectionError,
)
from orchestrator.compat.facade import MCPOrchestrator, MCPToolCall

__all__ = [
    "SECRET_VARIABLES",
    "CircuitBreakerOpenError",
    "MCPConnectionError",
    "MCPOrchestrator",
    "MCPOrchestratorConfig",
    "MCPOrchestratorError",
    "MCPTimeoutError",
    "MCPToolCall",
    "MCPToolError",
    "ParamsNotADict",
    "SeedConfigError",
    "SeedConfigWarning",
    "SeedMapping",
    "ServerConfig",
    "UpstreamConnectionError",
    "map_seed_config",
    "worker_environment",
    "write_worker_env_file",
]
