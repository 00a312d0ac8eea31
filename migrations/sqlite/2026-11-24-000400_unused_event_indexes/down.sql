CREATE INDEX lead_events_kind_at ON lead_events (kind, at);
CREATE INDEX lead_events_pipeline ON lead_events (lead_id, at) WHERE kind IN ('created', 'status_changed');
