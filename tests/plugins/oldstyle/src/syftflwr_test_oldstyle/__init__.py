"""A storage transport over one SQLite file shared by all participants (old-style imports)."""
