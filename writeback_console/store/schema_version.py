"""The schema version this code needs: the newest migration in ``migrations/versions``, and the table
Alembic keeps the version in. Apart from ``migrate`` so that reading it loads neither Alembic nor
SQLAlchemy; a test holds it to Alembic's own answer."""

from __future__ import annotations

HEAD_REVISION = "0014"
VERSION_TABLE = "alembic_version"
