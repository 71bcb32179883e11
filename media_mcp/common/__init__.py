"""Code shared by the four media servers: settings, the upstream HTTP client, errors, redaction, runner."""
