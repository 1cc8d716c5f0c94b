"""Alembic environment of the gradebook: migrations run on the connection the store hands over
(``config.attributes["connection"]``), never on a URL of their own."""

from alembic import context

connection = context.config.attributes["connection"]
# Batch mode: SQLite alters a table by copying it, PostgreSQL by ALTER TABLE; one script for both.
context.configure(connection=connection, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
