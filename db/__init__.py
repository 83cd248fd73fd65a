"""Database layer: models, engines and sessions, tenant scoping, migrations."""
