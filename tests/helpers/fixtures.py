"""Fixtures for the queue store on SQLite and PostgreSQL."""
