#!/usr/bin/env bash
# Start the local PostgreSQL 15 cluster and create the role and database the tests use.
# Idempotent: safe to run when the server is already up and the role exists.
set -euo pipefail

ROLE=writeback
PASSWORD=writeback
DB=writeback_test

if ! command -v pg_ctlcluster >/dev/null; then
    echo "PostgreSQL 15 is not installed (pg_ctlcluster not found); install the postgresql package" >&2
    exit 1
fi

as_postgres() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

if ! pg_lsclusters -h | awk '$1=="15" && $2=="main" {print $4}' | grep -q online; then
    if [ "$(id -u)" = 0 ]; then pg_ctlcluster 15 main start; else sudo pg_ctlcluster 15 main start; fi
fi

for _ in $(seq 1 50); do
    as_postgres pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 0.2
done
as_postgres pg_isready -h 127.0.0.1 -p 5432

as_postgres psql -q -v ON_ERROR_STOP=1 -d postgres <<SQL
DO \$\$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
        CREATE ROLE $ROLE LOGIN CREATEDB CREATEROLE PASSWORD '$PASSWORD';
    END IF;
END
\$\$;
-- DROP DATABASE ... WITH (FORCE) must be able to end an autovacuum worker that has just started on a
-- test database; such a worker belongs to no role, so only this grant lets a non-superuser end it.
GRANT pg_signal_backend TO $ROLE;
SQL
if ! as_postgres psql -tAq -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
    as_postgres createdb -O "$ROLE" "$DB"
fi
echo "PostgreSQL ready: $ROLE@127.0.0.1:5432/$DB"
