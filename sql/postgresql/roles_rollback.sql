-- Writeback Console: undo roles.sql in this database.
--
-- Run as the owner of the queue's tables, in the queue's database:
--
--     psql -v ON_ERROR_STOP=1 -d <queue database> -U <owner> -f roles_rollback.sql
--
-- Idempotent, one transaction. It takes every privilege in this schema away from the four roles, drops
-- the policies and the transition guard (trigger) roles.sql made and switches row-level security off
-- again on their tables. Then it drops each role that nobody else uses: a role kept is named in a
-- NOTICE, because a person still has it (REVOKE it, or DROP ROLE the person) or a role script of another
-- database still grants to it (run this there too). A role kept here has no access to this database any
-- more. The tables, the data and the triggers' functions of the migrations stay as they are.

BEGIN;

DO $$
DECLARE
    owner_name name;
BEGIN
    IF to_regclass('writeback') IS NULL THEN
        RAISE EXCEPTION 'no queue tables in schema %: is this the queue''s database?', current_schema();
    END IF;
    SELECT pg_get_userbyid(relowner) INTO owner_name FROM pg_class WHERE oid = 'writeback'::regclass;
    IF NOT pg_has_role(current_user, owner_name, 'USAGE') THEN
        RAISE EXCEPTION 'run this as %, the owner of the queue''s tables (not as %)', owner_name, current_user;
    END IF;
END
$$;

DO $$
DECLARE
    p record;
    r text;
    roles text[] := ARRAY['writeback_support', 'writeback_staff', 'writeback_advisor', 'writeback_dispatcher'];
BEGIN
    FOREACH r IN ARRAY roles LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format(
                'REVOKE ALL ON ALL TABLES IN SCHEMA %1$I FROM %2$I; '
                'REVOKE ALL ON ALL SEQUENCES IN SCHEMA %1$I FROM %2$I; '
                'REVOKE ALL ON SCHEMA %1$I FROM %2$I',
                current_schema(), r
            );
        END IF;
    END LOOP;
    FOR p IN
        SELECT policyname, tablename FROM pg_policies
        WHERE schemaname = current_schema()
          AND tablename IN ('writeback', 'audit_event', 'audit_event_row', 'setting', 'dispatcher_run', 'attempt')
          AND policyname IN (
              'writeback_read', 'writeback_staff_add', 'writeback_staff_change', 'writeback_advisor_add',
              'writeback_advisor_change', 'writeback_advisor_prune', 'writeback_dispatcher_add',
              'writeback_dispatcher_change', 'writeback_dispatcher_prune', 'audit_event_read',
              'audit_event_read_own', 'audit_event_support_add', 'audit_event_staff_add',
              'audit_event_advisor_add', 'audit_event_dispatcher_add', 'audit_event_row_read',
              'audit_event_row_add', 'setting_read', 'setting_advisor_add', 'setting_advisor_change',
              'setting_daily_prune_add', 'setting_daily_prune_claim', 'dispatcher_run_read',
              'dispatcher_run_add', 'dispatcher_run_trim', 'attempt_read', 'attempt_add', 'attempt_close',
              'attempt_drop_unsent'
          )
    LOOP
        EXECUTE format('DROP POLICY %I ON %I', p.policyname, p.tablename);
    END LOOP;
END
$$;

ALTER TABLE writeback DISABLE ROW LEVEL SECURITY;
ALTER TABLE audit_event DISABLE ROW LEVEL SECURITY;
ALTER TABLE audit_event_row DISABLE ROW LEVEL SECURITY;
ALTER TABLE setting DISABLE ROW LEVEL SECURITY;
ALTER TABLE dispatcher_run DISABLE ROW LEVEL SECURITY;
ALTER TABLE attempt DISABLE ROW LEVEL SECURITY;
DROP TRIGGER IF EXISTS tr_writeback_role_guard ON writeback;
DROP FUNCTION IF EXISTS writeback_role_guard();

-- The roles, the ones that include others first.
DO $$
DECLARE
    r text;
    members text;
BEGIN
    FOREACH r IN ARRAY ARRAY['writeback_advisor', 'writeback_staff', 'writeback_support', 'writeback_dispatcher']
    LOOP
        CONTINUE WHEN NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r);
        SELECT string_agg(m.rolname, ', ' ORDER BY m.rolname) INTO members
        FROM pg_auth_members a
        JOIN pg_roles g ON g.oid = a.roleid
        JOIN pg_roles m ON m.oid = a.member
        WHERE g.rolname = r
          AND m.rolname NOT IN ('writeback_support', 'writeback_staff', 'writeback_advisor', 'writeback_dispatcher');
        IF members IS NOT NULL THEN
            RAISE NOTICE 'kept role %: % still % it', r, members,
                CASE WHEN members LIKE '%,%' THEN 'have' ELSE 'has' END;
            CONTINUE;
        END IF;
        BEGIN
            EXECUTE format('DROP ROLE %I', r);
        EXCEPTION WHEN dependent_objects_still_exist THEN
            RAISE NOTICE 'kept role %: another database still grants it something (run this there too)', r;
        END;
    END LOOP;
END
$$;

COMMIT;
