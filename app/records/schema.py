"""The complete schema of the records database: Base.metadata with every table module imported.

Tables may be declared in any module of app.records (models.py, and e.g. backfills.py); a table is
only in Base.metadata once its module is imported. Alembic (app/migrations/env.py) and the schema
tests use `full_metadata()` so autogenerate sees every table.
"""

from __future__ import annotations

import importlib
import pkgutil

from sqlalchemy import MetaData

import app.records
from app.records.models import Base


def full_metadata() -> MetaData:
    """Base.metadata after importing every module of app.records (so every table is registered)."""
    for module in pkgutil.iter_modules(app.records.__path__):
        importlib.import_module(f"app.records.{module.name}")
    return Base.metadata
