"""Alembic environment: runs on the connection ibash-index hands over (see ibash_index/migrate.py)."""

from alembic import context

from ibash_index.schema import metadata

config = context.config
target_metadata = metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through `ibash_index.migrate.upgrade(engine)`")
    # render_as_batch: SQLite cannot ALTER most things; batch mode copies the table instead
    # (https://alembic.sqlalchemy.org/en/latest/batch.html).
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported")
run_migrations_online()
