-- Stored pipeline stays (`crate::leads::stays`): one row per stay of a live lead in one status,
-- derived from its history by the same code as `Lead.stages` and kept current on every write that
-- records a pipeline event. The report's stage medians and funnel read it with index walks instead
-- of replaying every event (11 s at 100,000 leads before; SPEC §6 report).
-- Rows are filled by the application right after this migration (cache_meta `lead_stays_built`).
CREATE TABLE lead_stays (
    id INTEGER PRIMARY KEY,
    lead_id TEXT NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    -- The status of the stay before this one (NULL for the first).
    from_status TEXT,
    entered_at TIMESTAMP NOT NULL,
    -- NULL while the lead is still in this status.
    left_at TIMESTAMP,
    -- Length of a completed stay in days (NULL while it goes on).
    days DOUBLE PRECISION
);
CREATE INDEX lead_stays_lead ON lead_stays (lead_id);
-- Stays by length (NULL while going on): a median is a range count and an OFFSET walk of this
-- covering index.
CREATE INDEX lead_stays_days ON lead_stays (status, days);
-- Current stays by where they came from (the funnel's "lost from").
CREATE INDEX lead_stays_open ON lead_stays (status, from_status) WHERE left_at IS NULL;

-- The report's counts (total, by status, by source, enriched) in one walk of a covering index,
-- and the leads created per day over the last 30 days as one range of another (no row read).
-- `deleted_at` comes LAST in both: SQLite does not treat a partial `WHERE deleted_at IS NULL`
-- index as covering, and an index that starts with `deleted_at` looks like an equality match to
-- the planner for every `deleted_at IS NULL` query (the duplicate-blocking range scans then walked
-- every live lead instead of using `leads_dedup_name`).
CREATE INDEX leads_report ON leads (status, source, enriched, deleted_at);
CREATE INDEX leads_live_created ON leads (created_at, deleted_at);
