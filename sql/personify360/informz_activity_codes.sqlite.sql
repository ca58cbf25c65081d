-- Informz writeback activity codes, SQLite form for the Personify360 simulator.
--
-- The same rows as informz_activity_codes.sql (the SQL Server script a Personify360 DBA runs); a test
-- checks that the two agree. The simulator creates APP_CODE and APP_SUBCODE first, with primary keys,
-- so INSERT OR IGNORE leaves rows that are already there untouched and the script can run at every start.

INSERT OR IGNORE INTO APP_CODE
    (SUBSYSTEM, TYPE, CODE, DESCR, ACTIVE_FLAG, OPTION_1, ADDOPER, ADDDATE, MODOPER, MODDATE)
VALUES
    ('CUS', 'ACTIVITY', 'INFORMZ_UNSUB', 'Informz: unsubscribed', 'Y', 'N', 'INFORMZ_SETUP', datetime('now'), 'INFORMZ_SETUP', datetime('now')),
    ('CUS', 'ACTIVITY', 'INFORMZ_RESUB', 'Informz: resubscribed', 'Y', 'N', 'INFORMZ_SETUP', datetime('now'), 'INFORMZ_SETUP', datetime('now')),
    ('CUS', 'ACTIVITY', 'INFORMZ_BADEMAIL', 'Informz: invalid email address', 'Y', 'N', 'INFORMZ_SETUP', datetime('now'), 'INFORMZ_SETUP', datetime('now')),
    ('CUS', 'ACTIVITY', 'INFORMZ_MAILING', 'Informz: mailing activity', 'Y', 'N', 'INFORMZ_SETUP', datetime('now'), 'INFORMZ_SETUP', datetime('now')),
    ('CUS', 'ACTIVITY', 'INFORMZ_IPM', 'Informz: interests (IPM)', 'Y', 'N', 'INFORMZ_SETUP', datetime('now'), 'INFORMZ_SETUP', datetime('now'));

INSERT OR IGNORE INTO APP_SUBCODE
    (SUBSYSTEM, TYPE, CODE, SUBCODE, DESCR, ACTIVE_FLAG, ADDOPER, ADDDATE, MODOPER, MODDATE)
VALUES
    ('CUS', 'ACTIVITY', 'INFORMZ_MAILING', 'SENT', 'Sent', 'Y', 'INFORMZ_SETUP', datetime('now'), 'INFORMZ_SETUP', datetime('now')),
    ('CUS', 'ACTIVITY', 'INFORMZ_MAILING', 'OPEN', 'Opened', 'Y', 'INFORMZ_SETUP', datetime('now'), 'INFORMZ_SETUP', datetime('now')),
    ('CUS', 'ACTIVITY', 'INFORMZ_MAILING', 'CLICK', 'Clicked', 'Y', 'INFORMZ_SETUP', datetime('now'), 'INFORMZ_SETUP', datetime('now')),
    ('CUS', 'ACTIVITY', 'INFORMZ_MAILING', 'BOUNCE', 'Bounced', 'Y', 'INFORMZ_SETUP', datetime('now'), 'INFORMZ_SETUP', datetime('now')),
    ('CUS', 'ACTIVITY', 'INFORMZ_MAILING', 'BLOCK', 'Blocked', 'Y', 'INFORMZ_SETUP', datetime('now'), 'INFORMZ_SETUP', datetime('now')),
    ('CUS', 'ACTIVITY', 'INFORMZ_IPM', 'OPTIN', 'Opted in', 'Y', 'INFORMZ_SETUP', datetime('now'), 'INFORMZ_SETUP', datetime('now')),
    ('CUS', 'ACTIVITY', 'INFORMZ_IPM', 'OPTOUT', 'Opted out', 'Y', 'INFORMZ_SETUP', datetime('now'), 'INFORMZ_SETUP', datetime('now'));
