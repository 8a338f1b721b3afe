"""polystore: one async DataStore interface over Redis, MongoDB, PostgreSQL, SQLite and memory."""
