/*
    Informz writeback: activity codes for Personify360 (SQL Server 2012 or later).

    Adds the APP_CODE rows (SUBSYSTEM 'CUS', TYPE 'ACTIVITY') and the APP_SUBCODE rows that the Writeback
    Console records System Activities with. Safe to run more than once: a row is inserted only if it is
    not there yet, and rows that already exist are left exactly as they are.

    OPTION_1 is 'N' on purpose: 'Y' would make the code a contact-tracking code, which CRM360 hides from
    System Activities.

    Every row is stamped ADDOPER = 'INFORMZ_SETUP' so that informz_activity_codes_rollback.sql removes only
    the rows this script added. Keep that value if you edit the script.

    All or nothing: the inserts run in one transaction that is rolled back on any error.

    Run:  sqlcmd -S <server> -d <Personify database> -E -b -i informz_activity_codes.sql
*/
SET NOCOUNT ON;
SET XACT_ABORT ON;

BEGIN TRY
    BEGIN TRANSACTION;

    DECLARE @oper VARCHAR(30) = 'INFORMZ_SETUP';
    DECLARE @now DATETIME = GETDATE();

    /* Activity codes */
    IF NOT EXISTS (SELECT 1 FROM dbo.APP_CODE
                   WHERE SUBSYSTEM = 'CUS' AND TYPE = 'ACTIVITY' AND CODE = 'INFORMZ_UNSUB')
    BEGIN
        INSERT INTO dbo.APP_CODE
            (SUBSYSTEM, TYPE, CODE, DESCR, ACTIVE_FLAG, OPTION_1, ADDOPER, ADDDATE, MODOPER, MODDATE)
        VALUES
            ('CUS', 'ACTIVITY', 'INFORMZ_UNSUB', 'Informz: unsubscribed', 'Y', 'N', @oper, @now, @oper, @now);
    END;

    IF NOT EXISTS (SELECT 1 FROM dbo.APP_CODE
                   WHERE SUBSYSTEM = 'CUS' AND TYPE = 'ACTIVITY' AND CODE = 'INFORMZ_RESUB')
    BEGIN
        INSERT INTO dbo.APP_CODE
            (SUBSYSTEM, TYPE, CODE, DESCR, ACTIVE_FLAG, OPTION_1, ADDOPER, ADDDATE, MODOPER, MODDATE)
        VALUES
            ('CUS', 'ACTIVITY', 'INFORMZ_RESUB', 'Informz: resubscribed', 'Y', 'N', @oper, @now, @oper, @now);
    END;

    IF NOT EXISTS (SELECT 1 FROM dbo.APP_CODE
                   WHERE SUBSYSTEM = 'CUS' AND TYPE = 'ACTIVITY' AND CODE = 'INFORMZ_BADEMAIL')
    BEGIN
        INSERT INTO dbo.APP_CODE
            (SUBSYSTEM, TYPE, CODE, DESCR, ACTIVE_FLAG, OPTION_1, ADDOPER, ADDDATE, MODOPER, MODDATE)
        VALUES
            ('CUS', 'ACTIVITY', 'INFORMZ_BADEMAIL', 'Informz: invalid email address', 'Y', 'N', @oper, @now, @oper, @now);
    END;

    IF NOT EXISTS (SELECT 1 FROM dbo.APP_CODE
                   WHERE SUBSYSTEM = 'CUS' AND TYPE = 'ACTIVITY' AND CODE = 'INFORMZ_MAILING')
    BEGIN
        INSERT INTO dbo.APP_CODE
            (SUBSYSTEM, TYPE, CODE, DESCR, ACTIVE_FLAG, OPTION_1, ADDOPER, ADDDATE, MODOPER, MODDATE)
        VALUES
            ('CUS', 'ACTIVITY', 'INFORMZ_MAILING', 'Informz: mailing activity', 'Y', 'N', @oper, @now, @oper, @now);
    END;

    IF NOT EXISTS (SELECT 1 FROM dbo.APP_CODE
                   WHERE SUBSYSTEM = 'CUS' AND TYPE = 'ACTIVITY' AND CODE = 'INFORMZ_IPM')
    BEGIN
        INSERT INTO dbo.APP_CODE
            (SUBSYSTEM, TYPE, CODE, DESCR, ACTIVE_FLAG, OPTION_1, ADDOPER, ADDDATE, MODOPER, MODDATE)
        VALUES
            ('CUS', 'ACTIVITY', 'INFORMZ_IPM', 'Informz: interests (IPM)', 'Y', 'N', @oper, @now, @oper, @now);
    END;

    /* Subcodes: for INFORMZ_MAILING the furthest event a recipient reached, for INFORMZ_IPM the
       direction of the change */
    IF NOT EXISTS (SELECT 1 FROM dbo.APP_SUBCODE
                   WHERE SUBSYSTEM = 'CUS' AND TYPE = 'ACTIVITY' AND CODE = 'INFORMZ_MAILING' AND SUBCODE = 'SENT')
    BEGIN
        INSERT INTO dbo.APP_SUBCODE
            (SUBSYSTEM, TYPE, CODE, SUBCODE, DESCR, ACTIVE_FLAG, ADDOPER, ADDDATE, MODOPER, MODDATE)
        VALUES
            ('CUS', 'ACTIVITY', 'INFORMZ_MAILING', 'SENT', 'Sent', 'Y', @oper, @now, @oper, @now);
    END;

    IF NOT EXISTS (SELECT 1 FROM dbo.APP_SUBCODE
                   WHERE SUBSYSTEM = 'CUS' AND TYPE = 'ACTIVITY' AND CODE = 'INFORMZ_MAILING' AND SUBCODE = 'OPEN')
    BEGIN
        INSERT INTO dbo.APP_SUBCODE
            (SUBSYSTEM, TYPE, CODE, SUBCODE, DESCR, ACTIVE_FLAG, ADDOPER, ADDDATE, MODOPER, MODDATE)
        VALUES
            ('CUS', 'ACTIVITY', 'INFORMZ_MAILING', 'OPEN', 'Opened', 'Y', @oper, @now, @oper, @now);
    END;

    IF NOT EXISTS (SELECT 1 FROM dbo.APP_SUBCODE
                   WHERE SUBSYSTEM = 'CUS' AND TYPE = 'ACTIVITY' AND CODE = 'INFORMZ_MAILING' AND SUBCODE = 'CLICK')
    BEGIN
        INSERT INTO dbo.APP_SUBCODE
            (SUBSYSTEM, TYPE, CODE, SUBCODE, DESCR, ACTIVE_FLAG, ADDOPER, ADDDATE, MODOPER, MODDATE)
        VALUES
            ('CUS', 'ACTIVITY', 'INFORMZ_MAILING', 'CLICK', 'Clicked', 'Y', @oper, @now, @oper, @now);
    END;

    IF NOT EXISTS (SELECT 1 FROM dbo.APP_SUBCODE
                   WHERE SUBSYSTEM = 'CUS' AND TYPE = 'ACTIVITY' AND CODE = 'INFORMZ_MAILING' AND SUBCODE = 'BOUNCE')
    BEGIN
        INSERT INTO dbo.APP_SUBCODE
            (SUBSYSTEM, TYPE, CODE, SUBCODE, DESCR, ACTIVE_FLAG, ADDOPER, ADDDATE, MODOPER, MODDATE)
        VALUES
            ('CUS', 'ACTIVITY', 'INFORMZ_MAILING', 'BOUNCE', 'Bounced', 'Y', @oper, @now, @oper, @now);
    END;

    IF NOT EXISTS (SELECT 1 FROM dbo.APP_SUBCODE
                   WHERE SUBSYSTEM = 'CUS' AND TYPE = 'ACTIVITY' AND CODE = 'INFORMZ_MAILING' AND SUBCODE = 'BLOCK')
    BEGIN
        INSERT INTO dbo.APP_SUBCODE
            (SUBSYSTEM, TYPE, CODE, SUBCODE, DESCR, ACTIVE_FLAG, ADDOPER, ADDDATE, MODOPER, MODDATE)
        VALUES
            ('CUS', 'ACTIVITY', 'INFORMZ_MAILING', 'BLOCK', 'Blocked', 'Y', @oper, @now, @oper, @now);
    END;

    IF NOT EXISTS (SELECT 1 FROM dbo.APP_SUBCODE
                   WHERE SUBSYSTEM = 'CUS' AND TYPE = 'ACTIVITY' AND CODE = 'INFORMZ_IPM' AND SUBCODE = 'OPTIN')
    BEGIN
        INSERT INTO dbo.APP_SUBCODE
            (SUBSYSTEM, TYPE, CODE, SUBCODE, DESCR, ACTIVE_FLAG, ADDOPER, ADDDATE, MODOPER, MODDATE)
        VALUES
            ('CUS', 'ACTIVITY', 'INFORMZ_IPM', 'OPTIN', 'Opted in', 'Y', @oper, @now, @oper, @now);
    END;

    IF NOT EXISTS (SELECT 1 FROM dbo.APP_SUBCODE
                   WHERE SUBSYSTEM = 'CUS' AND TYPE = 'ACTIVITY' AND CODE = 'INFORMZ_IPM' AND SUBCODE = 'OPTOUT')
    BEGIN
        INSERT INTO dbo.APP_SUBCODE
            (SUBSYSTEM, TYPE, CODE, SUBCODE, DESCR, ACTIVE_FLAG, ADDOPER, ADDDATE, MODOPER, MODDATE)
        VALUES
            ('CUS', 'ACTIVITY', 'INFORMZ_IPM', 'OPTOUT', 'Opted out', 'Y', @oper, @now, @oper, @now);
    END;

    /* A code that already existed may have been set up by hand as contact tracking or switched off. The
       console refuses such a code when it starts, so say so now rather than leave it to be found later. */
    IF EXISTS (SELECT 1 FROM dbo.APP_CODE
               WHERE SUBSYSTEM = 'CUS' AND TYPE = 'ACTIVITY'
                 AND CODE IN ('INFORMZ_UNSUB', 'INFORMZ_RESUB', 'INFORMZ_BADEMAIL', 'INFORMZ_MAILING', 'INFORMZ_IPM')
                 AND (OPTION_1 = 'Y' OR ACTIVE_FLAG <> 'Y'))
    BEGIN
        PRINT 'WARNING: an INFORMZ_* activity code already existed as contact tracking (OPTION_1 = ''Y'') or inactive; see README.md, "Verify".';
    END;

    COMMIT TRANSACTION;
    PRINT 'Informz activity codes are in place.';
END TRY
BEGIN CATCH
    IF @@TRANCOUNT > 0
        ROLLBACK TRANSACTION;
    THROW;
END CATCH;
