"""SQLite adapter: connection and pragmas, migrations, the hash-chained ledger, projections."""
