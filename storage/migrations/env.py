"""Alembic environment: migrations run on the connection the bot hands in at start."""

from alembic import context

from storage.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only the bot runs migrations
    raise RuntimeError("larmkedja runs its migrations itself at start (storage.Database.migrate)")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
