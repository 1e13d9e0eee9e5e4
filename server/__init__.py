"""Partsboard's server: Starlette on uvicorn, room state in Redis."""
