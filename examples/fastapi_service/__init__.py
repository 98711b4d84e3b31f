"""A small FastAPI service on wxdata's async API: see ``README.md`` beside this file."""

from examples.fastapi_service.app import create_app

__all__ = ["create_app"]
