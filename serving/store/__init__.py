"""The store: SQLAlchemy models, Alembic migrations (serving/migrations), tickets' life and API keys."""
from .db import make_engine, migrate, normalise_url
from .store import Conflict, KeyInfo, NotFound, Store, StoreError

__all__ = ["Store", "StoreError", "NotFound", "Conflict", "KeyInfo", "make_engine", "migrate", "normalise_url"]
