"""SQL scripts for the database administrators: ``personify360/`` (the activity codes Personify360
needs). In an installed copy this folder is ``writeback_console.sql``;
``writeback-console sql personify360`` prints or writes them."""
