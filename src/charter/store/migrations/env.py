"""Alembic environment: migrations run on the connection `store.db.upgrade` hands over."""

from alembic import context

from charter.store.models import Base

target_metadata = Base.metadata
connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through charter.store.db.upgrade (or `charter db upgrade`)")
context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
