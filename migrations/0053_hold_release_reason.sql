-- Why a legal-claims hold ended (settled, time-barred, withdrawn, placed by mistake), given with
-- its release (dsrflow/stores/holds_store.py `release_hold`, in the statement that releases it):
-- before, a release recorded only who and when, and an auditor reading a released hold, or the
-- erasures its release's sweep carried out, could not tell why the claim ended. NULL: released
-- before this was asked, read as "not recorded"; nothing can say it now.
ALTER TABLE legal_holds ADD COLUMN release_reason text;
