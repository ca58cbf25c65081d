/*
    Informz writeback: removes the activity codes added by informz_activity_codes.sql (SQL Server 2012 or
    later).

    Removes only rows that script added (ADDOPER = 'INFORMZ_SETUP'); codes a site had set up by other means
    stay. Subcodes go first, then the codes. Safe to run more than once: a second run finds nothing to
    delete.

    Refuses to run while any CUS_ACTIVITY row still uses one of the codes: removing the code would leave
    those System Activities pointing at a code that no longer exists. To stop new writebacks instead,
    deactivate the codes (ACTIVE_FLAG = 'N'); see README.md.

    Run:  sqlcmd -S <server> -d <Personify database> -E -b -i informz_activity_codes_rollback.sql
*/
SET NOCOUNT ON;
SET XACT_ABORT ON;

BEGIN TRY
    BEGIN TRANSACTION;

    IF EXISTS (SELECT 1 FROM dbo.CUS_ACTIVITY
               WHERE ACTIVITY_CODE IN ('INFORMZ_UNSUB', 'INFORMZ_RESUB', 'INFORMZ_BADEMAIL', 'INFORMZ_MAILING',
                                       'INFORMZ_IPM'))
    BEGIN
        THROW 50001, 'CUS_ACTIVITY rows still use INFORMZ_* activity codes; nothing was removed. Deactivate the codes instead (README.md).', 1;
    END;

    DELETE FROM dbo.APP_SUBCODE
    WHERE SUBSYSTEM = 'CUS' AND TYPE = 'ACTIVITY' AND ADDOPER = 'INFORMZ_SETUP'
      AND CODE = 'INFORMZ_MAILING' AND SUBCODE IN ('SENT', 'OPEN', 'CLICK', 'BOUNCE', 'BLOCK');

    DELETE FROM dbo.APP_SUBCODE
    WHERE SUBSYSTEM = 'CUS' AND TYPE = 'ACTIVITY' AND ADDOPER = 'INFORMZ_SETUP'
      AND CODE = 'INFORMZ_IPM' AND SUBCODE IN ('OPTIN', 'OPTOUT');

    DELETE FROM dbo.APP_CODE
    WHERE SUBSYSTEM = 'CUS' AND TYPE = 'ACTIVITY' AND ADDOPER = 'INFORMZ_SETUP'
      AND CODE IN ('INFORMZ_UNSUB', 'INFORMZ_RESUB', 'INFORMZ_BADEMAIL', 'INFORMZ_MAILING', 'INFORMZ_IPM');

    COMMIT TRANSACTION;
    PRINT 'Informz activity codes removed.';
END TRY
BEGIN CATCH
    IF @@TRANCOUNT > 0
        ROLLBACK TRANSACTION;
    THROW;
END CATCH;
