"""The Personify360 activity codes: the SQL Server script, its rollback, and the SQLite form the
simulator loads. See README.md beside it."""
