-- Storage bookkeeping that GC and tree statistics need on top of 0002.
--
-- deleting_since: when GC flipped the row to state 'deleting' (NULL while 'live'). A GC run deletes
-- the objects it flipped itself; rows another run left in 'deleting' are finished only once they are
-- older than the claim timeout (services.storage.GC_CLAIM_TIMEOUT_SECONDS), so two runs at once never
-- delete an object that was re-uploaded in between, and an upload of a hash whose GC crashed stops
-- waiting (409) after that timeout instead of until the next run.
ALTER TABLE blob_refs ADD COLUMN deleting_since TEXT;
ALTER TABLE manifests ADD COLUMN deleting_since TEXT;

-- entries: how many entries of the parent manifest point at this child (two files with the same
-- content, two identical subdirectories). The edge is stored once; the count lets a recursive query
-- count a tree's files without reading R2.
ALTER TABLE manifest_edges ADD COLUMN entries INTEGER NOT NULL DEFAULT 1 CHECK (entries >= 1);
