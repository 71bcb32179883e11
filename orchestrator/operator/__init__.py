"""Operator tooling, apart from the library: the ``mcp-orch`` command line (``cli``,
``cli_operator``), the one-machine stack (``stack``, ``stack_monitoring``, ``processes``),
Flower (``flower``, ``flower_app``) and the Prometheus endpoint (``metrics_server``).

The library core (``orchestrator.*`` outside this folder) and ``workers/`` never import it."""
