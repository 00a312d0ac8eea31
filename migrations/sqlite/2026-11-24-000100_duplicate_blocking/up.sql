-- Blocking index for fuzzy duplicate detection (SPEC §11, `crate::leads::dedup`): live leads by
-- normalised company, then `name|company`. A new lead's candidates are one range scan of this index
-- (same company, name starting with the same letter); it covers the query, so no row is read until
-- a candidate scores above the threshold.
CREATE INDEX leads_dedup_block ON leads (company_key, name_company_key) WHERE deleted_at IS NULL;
-- The second block (same name, any company) ranges over `name_company_key` of live leads.
CREATE INDEX leads_dedup_name ON leads (name_company_key) WHERE deleted_at IS NULL;
-- Pipeline history for `Lead.stages` and the report's stage durations.
CREATE INDEX lead_events_pipeline ON lead_events (lead_id, at) WHERE kind IN ('created', 'status_changed');
