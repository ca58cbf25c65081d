-- Writeback Console: the PostgreSQL roles of a shared queue, and what each may do.
--
-- Run as the owner of the queue's tables (the user who ran `writeback-console db upgrade`), in the
-- queue's database, after every `db upgrade`:
--
--     psql -v ON_ERROR_STOP=1 -d <queue database> -U <owner> -f roles.sql
--
-- The owner needs CREATEROLE the first time, to make the roles. Idempotent, one transaction: it takes
-- away what the roles had and grants it afresh, so running it twice, or after an upgrade, is fine.
-- The roles are NOLOGIN groups; give them to people with GRANT writeback_advisor TO alice (see
-- README.md beside this file). roles_rollback.sql undoes it.
--
--   writeback_support     reads everything; writes only its own audit entries for exports and
--                         console settings
--   writeback_staff       support + schedule, reschedule, cancel and send now of mailing activity
--   writeback_advisor     staff + manual retry, discard, enqueue, import, prune by hand, the writeback
--                         switches and the account settings
--   writeback_dispatcher  what a headless dispatcher needs: claim, renew, record, recover, deliveries,
--                         Personify360's health, the counters, the charts' rollup, its runs, automatic
--                         scheduling of mailing activity and the daily prune; no settings but the
--                         daily prune's own bookkeeping row, nothing of the audit log but its own entries
--
-- Nobody but the owner may update or delete audit_event, audit_event_row, writeback_event or
-- pruned_writeback, nor insert into writeback_event: the triggers write it (their functions run as the
-- owner, migration 0013). audit_event.db_user is filled by the server (session_user) and no role may
-- write it, so no one can write an entry in another's name.

BEGIN;
-- Only what matters: not the "does not exist, skipping" of each first run.
SET LOCAL client_min_messages = warning;

DO $$
DECLARE
    owner_name name;
BEGIN
    IF to_regclass('writeback') IS NULL OR to_regclass('dispatcher_run') IS NULL THEN
        RAISE EXCEPTION 'no queue tables in schema %: run `writeback-console db upgrade` first, in this database',
            current_schema();
    END IF;
    SELECT pg_get_userbyid(relowner) INTO owner_name FROM pg_class WHERE oid = 'writeback'::regclass;
    IF NOT pg_has_role(current_user, owner_name, 'USAGE') THEN
        RAISE EXCEPTION 'run this as %, the owner of the queue''s tables (not as %)', owner_name, current_user;
    END IF;
END
$$;

-- The roles: cluster-wide, made once (a second database of queues finds them there).
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['writeback_support', 'writeback_staff', 'writeback_advisor', 'writeback_dispatcher']
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- made by another session at this moment
            END;
        END IF;
    END LOOP;
END
$$;

GRANT writeback_support TO writeback_staff;
GRANT writeback_staff TO writeback_advisor;

-- Start from nothing in this schema, so that what follows is exactly what each role has.
DO $$
BEGIN
    EXECUTE format(
        'REVOKE ALL ON ALL TABLES IN SCHEMA %1$I FROM writeback_support, writeback_staff, '
        'writeback_advisor, writeback_dispatcher; '
        'REVOKE ALL ON ALL SEQUENCES IN SCHEMA %1$I FROM writeback_support, writeback_staff, '
        'writeback_advisor, writeback_dispatcher; '
        'GRANT USAGE ON SCHEMA %1$I TO writeback_support, writeback_dispatcher',
        current_schema()
    );
END
$$;

-- ---------------------------------------------------------------------------------------------------
-- Reading: support (and so staff and advisor) read everything a screen shows; the dispatcher what a run
-- reads (writebacks, mailings, settings, health, the counts, the events and attempts the charts roll up).

GRANT SELECT ON
    mailing, mailing_recipient, writeback, attempt, delivery, audit_event, audit_event_row,
    pruned_writeback, writeback_event, status_count, status_count_delta, writeback_change,
    dispatcher_run, chart_hour, chart_rollup, setting, remote_health, alembic_version
TO writeback_support;

GRANT SELECT ON
    mailing, mailing_recipient, writeback, attempt, delivery, pruned_writeback, writeback_event,
    status_count, status_count_delta, writeback_change, dispatcher_run, chart_hour, chart_rollup, setting,
    remote_health, alembic_version
TO writeback_dispatcher;
-- Of the audit log only what writing its own entries needs (the new entry's id; the policy's check).
GRANT SELECT (id, action, db_user) ON audit_event TO writeback_dispatcher;

-- ---------------------------------------------------------------------------------------------------
-- The audit log: everyone writes entries, of their own actions only (policies below); db_user is not
-- among the columns, so the server's session_user is always what it holds.

GRANT INSERT (at, actor, action, row_count, filter, detail) ON audit_event
TO writeback_support, writeback_dispatcher;
GRANT INSERT (event_id, writeback_id, ref) ON audit_event_row TO writeback_support, writeback_dispatcher;

-- ---------------------------------------------------------------------------------------------------
-- Writebacks. Staff add and move mailing activity; the advisor adds any writeback and retries and
-- discards; the dispatcher works rows through. The columns say what each may set, the policies which
-- rows and to what.

GRANT INSERT (
    ref, kind, account, email, master_customer_id, sub_customer_id, mailing_id, payload, occurred_at,
    status, attempts, max_attempts, scheduled_for, lease_token, interruptions, delivery_uncertain,
    created_at, updated_at, changed_by
) ON writeback TO writeback_staff, writeback_dispatcher;

GRANT UPDATE (status, scheduled_for, updated_at, changed_by) ON writeback TO writeback_staff;
-- A manual retry grants one more attempt (max_attempts) due at once (next_attempt_at).
GRANT UPDATE (max_attempts, next_attempt_at) ON writeback TO writeback_advisor;
-- Claim, renew, record, put back, recover, and the constituent a write went to.
GRANT UPDATE (
    status, attempts, next_attempt_at, locked_by, locked_at, lease_expires_at, lease_token, interruptions,
    claimed_from, delivery_uncertain, uncertain_since, sent_at, last_error, last_http_status, updated_at,
    changed_by, master_customer_id, sub_customer_id
) ON writeback TO writeback_dispatcher;
-- Retention: by hand (advisor) and daily (dispatcher); only Sent and No Remote Recipients rows (policy).
-- Their attempts, deliveries and events go by cascade, which PostgreSQL runs as the owner.
GRANT DELETE ON writeback TO writeback_advisor, writeback_dispatcher;
GRANT INSERT ON pruned_writeback TO writeback_advisor, writeback_dispatcher;

GRANT SELECT, INSERT, UPDATE, DELETE ON attempt TO writeback_dispatcher;
GRANT SELECT, INSERT, UPDATE ON delivery TO writeback_dispatcher;
GRANT SELECT, INSERT, UPDATE ON remote_health TO writeback_dispatcher;
GRANT INSERT (
    dispatcher, started_at, finished_at, interval_seconds, result, summary, claimed, sent, failed,
    waiting_new, waiting_scheduled, waiting_error, oldest_waiting_at
) ON dispatcher_run TO writeback_dispatcher;
-- Keeping the table of runs small: only runs older than the policy's 30 days (store.runs keeps 35).
GRANT DELETE ON dispatcher_run TO writeback_dispatcher;
-- The charts' rollup only adds hours (and moves its mark): an hour counted stays as counted.
GRANT INSERT ON chart_hour TO writeback_dispatcher;
GRANT INSERT, UPDATE ON chart_rollup TO writeback_dispatcher;

-- Folding the status counts (the dispatcher after each run, a prune at its end). The triggers write the
-- deltas themselves.
GRANT DELETE ON status_count_delta TO writeback_advisor, writeback_dispatcher;
GRANT INSERT, UPDATE ON status_count TO writeback_advisor, writeback_dispatcher;

-- Settings: the advisor's switches and account settings; the dispatcher only the daily prune's claim
-- (the retention_last_prune row, policy below).
GRANT INSERT (account, key, value, updated_at, updated_by) ON setting
TO writeback_advisor, writeback_dispatcher;
GRANT UPDATE (value, updated_at, updated_by) ON setting TO writeback_advisor, writeback_dispatcher;

-- The sequences of the tables each role adds rows to.
DO $$
DECLARE
    grant_to record;
BEGIN
    FOR grant_to IN
        SELECT * FROM (VALUES
            ('writeback', 'writeback_staff'),
            ('writeback', 'writeback_dispatcher'),
            ('audit_event', 'writeback_support'),
            ('audit_event', 'writeback_dispatcher'),
            ('attempt', 'writeback_dispatcher'),
            ('delivery', 'writeback_dispatcher'),
            ('dispatcher_run', 'writeback_dispatcher')
        ) AS t (table_name, role_name)
    LOOP
        EXECUTE format(
            'GRANT USAGE ON SEQUENCE %s TO %I',
            pg_get_serial_sequence(grant_to.table_name, 'id'),
            grant_to.role_name
        );
    END LOOP;
END
$$;

-- ---------------------------------------------------------------------------------------------------
-- Row-level security: the rules a grant cannot say. The owner is not subject to it (it is not FORCEd),
-- so migrations, the triggers' functions and a console run as the owner see and do everything.

ALTER TABLE writeback ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_event ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_event_row ENABLE ROW LEVEL SECURITY;
ALTER TABLE setting ENABLE ROW LEVEL SECURITY;
ALTER TABLE dispatcher_run ENABLE ROW LEVEL SECURITY;
ALTER TABLE attempt ENABLE ROW LEVEL SECURITY;

-- attempt: the history of failures is kept; a dispatcher closes (or, never sent, drops) an open attempt
-- only ----------------------------------------------------------------------------------------------

DROP POLICY IF EXISTS attempt_read ON attempt;
CREATE POLICY attempt_read ON attempt FOR SELECT TO writeback_support, writeback_dispatcher USING (true);
DROP POLICY IF EXISTS attempt_add ON attempt;
CREATE POLICY attempt_add ON attempt FOR INSERT TO writeback_dispatcher WITH CHECK (outcome IS NULL);
DROP POLICY IF EXISTS attempt_close ON attempt;
CREATE POLICY attempt_close ON attempt FOR UPDATE TO writeback_dispatcher
    USING (outcome IS NULL) WITH CHECK (true);
DROP POLICY IF EXISTS attempt_drop_unsent ON attempt;
CREATE POLICY attempt_drop_unsent ON attempt FOR DELETE TO writeback_dispatcher USING (outcome IS NULL);

-- dispatcher_run: every run is read; a dispatcher adds its own and deletes only month-old ones ----------

DROP POLICY IF EXISTS dispatcher_run_read ON dispatcher_run;
CREATE POLICY dispatcher_run_read ON dispatcher_run FOR SELECT
    TO writeback_support, writeback_dispatcher USING (true);
DROP POLICY IF EXISTS dispatcher_run_add ON dispatcher_run;
CREATE POLICY dispatcher_run_add ON dispatcher_run FOR INSERT TO writeback_dispatcher WITH CHECK (true);
DROP POLICY IF EXISTS dispatcher_run_trim ON dispatcher_run;
CREATE POLICY dispatcher_run_trim ON dispatcher_run FOR DELETE TO writeback_dispatcher
    USING (finished_at < now() - interval '30 days');

-- writeback --------------------------------------------------------------------------------------

DROP POLICY IF EXISTS writeback_read ON writeback;
CREATE POLICY writeback_read ON writeback FOR SELECT
    TO writeback_support, writeback_dispatcher USING (true);

-- Staff: mailing activity only, added waiting, moved between New and Scheduled or cancelled. A row they
-- may not touch is either out of reach (not New or Scheduled: the update changes nothing) or refused
-- (another kind: "new row violates row-level security policy").
DROP POLICY IF EXISTS writeback_staff_add ON writeback;
CREATE POLICY writeback_staff_add ON writeback FOR INSERT TO writeback_staff
    WITH CHECK (kind = 'mailing_activity' AND status IN ('new', 'scheduled') AND attempts = 0);
DROP POLICY IF EXISTS writeback_staff_change ON writeback;
CREATE POLICY writeback_staff_change ON writeback FOR UPDATE TO writeback_staff
    USING (status IN ('new', 'scheduled'))
    WITH CHECK (kind = 'mailing_activity' AND status IN ('new', 'scheduled', 'cancelled'));

-- Advisor: any kind, added waiting; retried (Error or Discarded to New) and discarded (Error to
-- Discarded). A prune locks the Sent and No Remote Recipients rows it deletes, so those are within reach,
-- but whatever an advisor changes must end waiting, cancelled or discarded with sent_at empty: a row that
-- was sent (sent_at, which only a dispatcher sets) cannot be made to go again. A Processing or Cancelled
-- row is out of reach.
DROP POLICY IF EXISTS writeback_advisor_add ON writeback;
CREATE POLICY writeback_advisor_add ON writeback FOR INSERT TO writeback_advisor
    WITH CHECK (status IN ('new', 'scheduled') AND attempts = 0);
DROP POLICY IF EXISTS writeback_advisor_change ON writeback;
CREATE POLICY writeback_advisor_change ON writeback FOR UPDATE TO writeback_advisor
    USING (status IN ('new', 'scheduled', 'error', 'discarded', 'sent', 'no_remote_recipients'))
    WITH CHECK (status IN ('new', 'scheduled', 'cancelled', 'discarded') AND sent_at IS NULL);
DROP POLICY IF EXISTS writeback_advisor_prune ON writeback;
CREATE POLICY writeback_advisor_prune ON writeback FOR DELETE TO writeback_advisor
    USING (status IN ('sent', 'no_remote_recipients'));

-- Dispatcher: every row through its statuses; adds only scheduled mailing activity (automatic
-- scheduling); deletes only what retention may.
DROP POLICY IF EXISTS writeback_dispatcher_add ON writeback;
CREATE POLICY writeback_dispatcher_add ON writeback FOR INSERT TO writeback_dispatcher
    WITH CHECK (kind = 'mailing_activity' AND status = 'scheduled' AND attempts = 0);
DROP POLICY IF EXISTS writeback_dispatcher_change ON writeback;
CREATE POLICY writeback_dispatcher_change ON writeback FOR UPDATE TO writeback_dispatcher
    USING (true) WITH CHECK (true);
DROP POLICY IF EXISTS writeback_dispatcher_prune ON writeback;
CREATE POLICY writeback_dispatcher_prune ON writeback FOR DELETE TO writeback_dispatcher
    USING (status IN ('sent', 'no_remote_recipients'));

-- audit_event: each role writes the entries of its own actions ------------------------------------

DROP POLICY IF EXISTS audit_event_read ON audit_event;
CREATE POLICY audit_event_read ON audit_event FOR SELECT TO writeback_support USING (true);
DROP POLICY IF EXISTS audit_event_read_own ON audit_event;
CREATE POLICY audit_event_read_own ON audit_event FOR SELECT TO writeback_dispatcher
    USING (db_user = session_user);

DROP POLICY IF EXISTS audit_event_support_add ON audit_event;
CREATE POLICY audit_event_support_add ON audit_event FOR INSERT TO writeback_support
    WITH CHECK (action IN ('export', 'console_setting'));
DROP POLICY IF EXISTS audit_event_staff_add ON audit_event;
CREATE POLICY audit_event_staff_add ON audit_event FOR INSERT TO writeback_staff
    WITH CHECK (action IN ('schedule', 'send_now', 'reschedule', 'cancel'));
DROP POLICY IF EXISTS audit_event_advisor_add ON audit_event;
CREATE POLICY audit_event_advisor_add ON audit_event FOR INSERT TO writeback_advisor
    WITH CHECK (action IN ('retry', 'discard', 'enqueue', 'import', 'prune', 'setting'));
DROP POLICY IF EXISTS audit_event_dispatcher_add ON audit_event;
CREATE POLICY audit_event_dispatcher_add ON audit_event FOR INSERT TO writeback_dispatcher
    WITH CHECK (action IN ('auto_schedule', 'prune'));

-- audit_event_row: rows only for an entry the same database user wrote ---------------------------

DROP POLICY IF EXISTS audit_event_row_read ON audit_event_row;
CREATE POLICY audit_event_row_read ON audit_event_row FOR SELECT TO writeback_support USING (true);
DROP POLICY IF EXISTS audit_event_row_add ON audit_event_row;
CREATE POLICY audit_event_row_add ON audit_event_row FOR INSERT
    TO writeback_support, writeback_dispatcher
    WITH CHECK (EXISTS (SELECT 1 FROM audit_event e WHERE e.id = event_id AND e.db_user = session_user));

-- setting: the advisor's, but for the daily prune's bookkeeping, which is the dispatcher's ----------

DROP POLICY IF EXISTS setting_read ON setting;
CREATE POLICY setting_read ON setting FOR SELECT TO writeback_support, writeback_dispatcher USING (true);
DROP POLICY IF EXISTS setting_advisor_add ON setting;
CREATE POLICY setting_advisor_add ON setting FOR INSERT TO writeback_advisor
    WITH CHECK (key <> 'retention_last_prune');
DROP POLICY IF EXISTS setting_advisor_change ON setting;
CREATE POLICY setting_advisor_change ON setting FOR UPDATE TO writeback_advisor
    USING (key <> 'retention_last_prune') WITH CHECK (key <> 'retention_last_prune');
DROP POLICY IF EXISTS setting_daily_prune_add ON setting;
CREATE POLICY setting_daily_prune_add ON setting FOR INSERT TO writeback_dispatcher
    WITH CHECK (account = '*' AND key = 'retention_last_prune');
DROP POLICY IF EXISTS setting_daily_prune_claim ON setting;
CREATE POLICY setting_daily_prune_claim ON setting FOR UPDATE TO writeback_dispatcher
    USING (account = '*' AND key = 'retention_last_prune')
    WITH CHECK (account = '*' AND key = 'retention_last_prune');


-- ---------------------------------------------------------------------------------------------------
-- Transitions. A policy sees a row before or after a change, never both, and a user's policies add up
-- (an advisor has staff's too), so what each role may turn a writeback into is checked here, on the
-- change itself. The owner (migrations, a console run as the owner) is not checked.
--   dispatcher: claim (New, Scheduled or Error to Processing, using one attempt); from Processing its
--     record, put-back or recovery (not Cancelled or Discarded; the claim's attempt kept or given back);
--   staff: mailing activity between New and Scheduled, or cancelled;
--   advisor: a retry (Discarded, or Error with its attempts used up, to New with exactly one more) and a
--     discard (Error to Discarded);
--   anyone: a change that leaves the status, attempts and sent time as they were (a lease renewal).

CREATE OR REPLACE FUNCTION writeback_role_guard() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public
AS $$
DECLARE
    same_count boolean := NEW.attempts = OLD.attempts AND NEW.max_attempts = OLD.max_attempts;
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
        OR pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'USAGE') THEN
        RETURN NEW;
    END IF;
    IF NEW.status = OLD.status AND same_count AND NEW.sent_at IS NOT DISTINCT FROM OLD.sent_at THEN
        RETURN NEW;
    END IF;
    IF pg_has_role(current_user, 'writeback_dispatcher', 'USAGE') AND NEW.max_attempts = OLD.max_attempts
    THEN
        IF NEW.status = 'processing' AND OLD.status IN ('new', 'scheduled', 'error')
            AND NEW.attempts = OLD.attempts + 1 THEN
            RETURN NEW;
        END IF;
        IF OLD.status = 'processing'
            AND NEW.status IN ('new', 'scheduled', 'error', 'sent', 'no_remote_recipients', 'processing')
            AND NEW.attempts IN (OLD.attempts, OLD.attempts - 1) THEN
            RETURN NEW;
        END IF;
    END IF;
    IF pg_has_role(current_user, 'writeback_staff', 'USAGE') AND same_count
        AND NEW.kind = 'mailing_activity' AND OLD.status IN ('new', 'scheduled')
        AND NEW.status IN ('new', 'scheduled', 'cancelled') AND NEW.sent_at IS NULL THEN
        RETURN NEW;
    END IF;
    IF pg_has_role(current_user, 'writeback_advisor', 'USAGE') AND NEW.attempts = OLD.attempts
        AND NEW.sent_at IS NULL THEN
        IF NEW.status = 'new' AND NEW.max_attempts = OLD.attempts + 1
            AND (OLD.status = 'discarded' OR (OLD.status = 'error' AND OLD.attempts >= OLD.max_attempts)) THEN
            RETURN NEW;
        END IF;
        IF NEW.status = 'discarded' AND OLD.status = 'error' AND same_count THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION USING
        ERRCODE = 'insufficient_privilege',
        MESSAGE = format(
            'permission denied for table writeback: %s may not change %s from %s to %s (attempts %s of %s to %s of %s)',
            current_user, OLD.ref, OLD.status, NEW.status,
            OLD.attempts, OLD.max_attempts, NEW.attempts, NEW.max_attempts
        );
END
$$;

DROP TRIGGER IF EXISTS tr_writeback_role_guard ON writeback;
CREATE TRIGGER tr_writeback_role_guard BEFORE UPDATE ON writeback
    FOR EACH ROW EXECUTE FUNCTION writeback_role_guard();

COMMIT;
