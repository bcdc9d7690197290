"""Alembic migrations of central's schema (run by `Repository.migrate`)."""
