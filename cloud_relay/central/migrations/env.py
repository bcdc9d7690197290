"""Alembic environment: migrations always run on a connection handed in by `Repository.migrate`."""

from __future__ import annotations

from alembic import context

from cloud_relay.central.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run central's migrations through `storehub central run` (Repository.migrate)")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
