"""The SQLite store: one file holding events, fact bindings and artifacts."""
