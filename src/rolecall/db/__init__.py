"""Storage: declarative base, engine and session factory, migrations."""
