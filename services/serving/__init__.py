"""Serving: the runtime that opens the stores once, time limits on store calls, neighbour caches, the server."""
