"""The PostgreSQL roles of a shared queue: the role script and its rollback. See README.md beside them."""
