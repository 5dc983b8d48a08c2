"""The web dashboard: server-rendered pages over the same operations as the API (`shipyard.api.operations`)."""
