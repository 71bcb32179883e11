"""MCP servers of the test suite, run as real processes over stdio or streamable HTTP."""
