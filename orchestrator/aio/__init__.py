"""The asyncio client (``AsyncOrchestrator``) and the result waiter it shares between calls."""
