"""HQ side: the ledger ingest API, its storage (SQLite or PostgreSQL) and the store registry."""
