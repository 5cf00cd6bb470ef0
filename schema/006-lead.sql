-- A placeholder for the lead's schema 6 (the symbol ledger, issue 14), so
-- that 007 has its place: at the merge, the lead's 006 replaces this file.
SELECT 1;
