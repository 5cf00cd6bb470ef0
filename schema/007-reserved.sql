-- Placeholder on branch holes only: 007 belongs to another branch (lead: 006,
-- bytes: 007). Drop this file when merging theirs.
SELECT 1;
