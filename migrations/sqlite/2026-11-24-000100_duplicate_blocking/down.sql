DROP INDEX lead_events_pipeline;
DROP INDEX leads_dedup_name;
DROP INDEX leads_dedup_block;
