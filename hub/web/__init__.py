"""The store manager's page on the hub: FastAPI app, live updates, JSON API, pairing endpoint."""
