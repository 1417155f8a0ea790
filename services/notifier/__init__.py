"""notifier: not built yet; it serves only its health and metrics endpoints."""
