"""SQL scripts for the database administrators: ``personify360/`` (the activity codes Personify360
needs) and ``postgresql/`` (the roles of a shared queue). In an installed copy this folder is
``writeback_console.sql``; ``writeback-console sql personify360`` (or ``postgresql-roles``) prints or
writes them."""
