-- Two indexes on lead_events that no query uses, each written by every event (every create,
-- change, merge and status move): a single createLead dirtied 36 pages, two of them these.
-- Every read of history goes by lead (`crate::leads::history`, `crate::leads::stays`, merges,
-- the dump), which lead_events_lead_at (lead_id, at) serves (checked with EXPLAIN QUERY PLAN).
--   lead_events_kind_at   (kind, at): no query filters events by kind in SQL; the pipeline
--                         kinds are picked in Rust (see `crate::leads::stays::pipeline_events`).
--   lead_events_pipeline  (lead_id, at) WHERE kind IN ('created', 'status_changed'): served the
--                         stage history before it was stored in lead_stays; no query implies
--                         its WHERE clause any more.
DROP INDEX lead_events_kind_at;
DROP INDEX lead_events_pipeline;
