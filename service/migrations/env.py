"""Alembic environment: runs on the engine handed over by `service.db.upgrade` (no alembic.ini needed)."""

from __future__ import annotations

from alembic import context

from bazkhord.service.db import Base, make_engine

config = context.config
engine = config.attributes.get("engine") or make_engine(config.get_main_option("sqlalchemy.url") or "")

with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
