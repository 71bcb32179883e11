"""A bare Celery no-op task on the worker's own app: the baseline of the call-path benchmark."""

from workers.app import app


@app.task(name="bench.noop")
def noop() -> None:
    """Does nothing: its round trip is pure Celery + Redis cost."""
