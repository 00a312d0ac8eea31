-- leadcache initial schema (SQLite).
--
-- Portability rules (so a PostgreSQL twin under migrations/postgresql can use the same names):
-- timestamps are TIMESTAMP (UTC, no zone), JSON is TEXT, booleans are BOOLEAN, money-free numbers
-- are DOUBLE PRECISION / BIGINT. Only the FTS5 table and its triggers are SQLite-specific.

-- `rid` is SQLite's rowid made explicit: VACUUM may renumber an implicit rowid, and the full-text
-- index below is keyed on it, so it must be stable. It never leaves the database; `id` (a UUID) is
-- the lead's identity everywhere else.
CREATE TABLE leads (
    rid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    airtable_id TEXT UNIQUE,
    full_name TEXT NOT NULL,
    email TEXT,
    company TEXT,
    title TEXT,
    linkedin_url TEXT,
    website TEXT,
    phone TEXT,
    location TEXT,
    industry TEXT,
    company_size TEXT,
    status TEXT NOT NULL DEFAULT 'new',
    source TEXT,
    score DOUBLE PRECISION,
    verified BOOLEAN NOT NULL DEFAULT FALSE,
    enriched BOOLEAN NOT NULL DEFAULT FALSE,
    needs_enrichment BOOLEAN NOT NULL DEFAULT FALSE,
    scraped_at TIMESTAMP,
    enriched_at TIMESTAMP,
    contacted_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP,
    version INTEGER NOT NULL DEFAULT 1,
    extra TEXT NOT NULL DEFAULT '{}',
    remote_fields TEXT,
    remote_modified_at TIMESTAMP,
    synced_at TIMESTAMP,
    sync_state TEXT NOT NULL DEFAULT 'local',
    email_key TEXT,
    linkedin_key TEXT,
    name_company_key TEXT,
    company_key TEXT
);
CREATE INDEX leads_status ON leads (status);
CREATE INDEX leads_status_updated ON leads (status, updated_at);
CREATE INDEX leads_company ON leads (company);
CREATE INDEX leads_email_key ON leads (email_key);
CREATE INDEX leads_linkedin_key ON leads (linkedin_key);
CREATE INDEX leads_name_company_key ON leads (name_company_key);
CREATE INDEX leads_company_key ON leads (company_key);
CREATE INDEX leads_updated_at ON leads (updated_at);
CREATE INDEX leads_created_at ON leads (created_at);
CREATE INDEX leads_sync_state ON leads (sync_state);

CREATE VIRTUAL TABLE leads_fts USING fts5(
    full_name, company, email, title, location, industry,
    content = 'leads', content_rowid = 'rid',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER leads_fts_insert AFTER INSERT ON leads BEGIN
    INSERT INTO leads_fts (rowid, full_name, company, email, title, location, industry)
    VALUES (new.rid, new.full_name, new.company, new.email, new.title, new.location, new.industry);
END;
CREATE TRIGGER leads_fts_delete AFTER DELETE ON leads BEGIN
    INSERT INTO leads_fts (leads_fts, rowid, full_name, company, email, title, location, industry)
    VALUES ('delete', old.rid, old.full_name, old.company, old.email, old.title, old.location, old.industry);
END;
CREATE TRIGGER leads_fts_update AFTER UPDATE OF full_name, company, email, title, location, industry ON leads BEGIN
    INSERT INTO leads_fts (leads_fts, rowid, full_name, company, email, title, location, industry)
    VALUES ('delete', old.rid, old.full_name, old.company, old.email, old.title, old.location, old.industry);
    INSERT INTO leads_fts (rowid, full_name, company, email, title, location, industry)
    VALUES (new.rid, new.full_name, new.company, new.email, new.title, new.location, new.industry);
END;

-- Append-only history. `changes` is JSON {field: [old, new]}; `message` carries a note's text or a
-- human-readable description (merge, conflict).
CREATE TABLE lead_events (
    id INTEGER PRIMARY KEY,
    lead_id TEXT NOT NULL REFERENCES leads (id),
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    changes TEXT NOT NULL DEFAULT '{}',
    message TEXT,
    at TIMESTAMP NOT NULL
);
CREATE INDEX lead_events_lead_at ON lead_events (lead_id, at);
CREATE INDEX lead_events_kind_at ON lead_events (kind, at);

CREATE TABLE enrichments (
    id INTEGER PRIMARY KEY,
    lead_id TEXT NOT NULL REFERENCES leads (id),
    provider TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}',
    confidence DOUBLE PRECISION,
    at TIMESTAMP NOT NULL
);
CREATE INDEX enrichments_lead_at ON enrichments (lead_id, at);

CREATE TABLE campaigns (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE campaign_leads (
    campaign_id TEXT NOT NULL REFERENCES campaigns (id),
    lead_id TEXT NOT NULL REFERENCES leads (id),
    subject TEXT,
    body TEXT,
    status TEXT NOT NULL DEFAULT 'draft',
    sent_at TIMESTAMP,
    replied_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (campaign_id, lead_id)
);
CREATE INDEX campaign_leads_lead ON campaign_leads (lead_id);

-- One row per lead with unpushed changes, written in the same transaction as the change.
-- `fields` is a JSON array of local field names changed since the last push; `seq` grows with every
-- coalesced change so a push that finishes can tell whether the row moved under it.
CREATE TABLE outbox (
    lead_id TEXT PRIMARY KEY NOT NULL REFERENCES leads (id),
    operation TEXT NOT NULL,
    fields TEXT NOT NULL DEFAULT '[]',
    seq INTEGER NOT NULL DEFAULT 1,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    last_error TEXT,
    state TEXT NOT NULL DEFAULT 'pending',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX outbox_state_next ON outbox (state, next_attempt_at);

CREATE TABLE sync_runs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    trigger TEXT NOT NULL DEFAULT 'manual',
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    outcome TEXT NOT NULL DEFAULT 'running',
    phase TEXT,
    fetched INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL DEFAULT 0,
    updated INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    pushed INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    conflicts INTEGER NOT NULL DEFAULT 0,
    requests INTEGER NOT NULL DEFAULT 0,
    retries INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE INDEX sync_runs_started ON sync_runs (started_at);

-- A conflict is open until `resolved_at` is set by a person; `resolution` is the side applied
-- (first by CONFLICT_POLICY, then by hand). Values are JSON.
CREATE TABLE sync_conflicts (
    id INTEGER PRIMARY KEY,
    lead_id TEXT NOT NULL REFERENCES leads (id),
    field TEXT NOT NULL,
    local_value TEXT,
    remote_value TEXT,
    base_value TEXT,
    resolution TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    resolved_at TIMESTAMP,
    resolved_by TEXT
);
CREATE INDEX sync_conflicts_open ON sync_conflicts (resolved_at, lead_id);

CREATE TABLE cache_meta (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE import_log (
    id INTEGER PRIMARY KEY,
    file TEXT NOT NULL,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    imported INTEGER NOT NULL DEFAULT 0,
    merged INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    dry_run BOOLEAN NOT NULL DEFAULT FALSE,
    errors TEXT NOT NULL DEFAULT '[]'
);

-- Only a SHA-256 of each token is kept; `prefix` (the first characters) lets a person tell tokens apart.
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    revoked_at TIMESTAMP
);

CREATE TABLE backups (
    id INTEGER PRIMARY KEY,
    file TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    size_bytes BIGINT NOT NULL DEFAULT 0,
    duration_ms BIGINT NOT NULL DEFAULT 0,
    lead_count BIGINT NOT NULL DEFAULT 0,
    outcome TEXT NOT NULL,
    error TEXT
);

-- Airtable requests per UTC day and kind, for the monthly quota and the dashboard.
CREATE TABLE airtable_usage (
    day TEXT NOT NULL,
    kind TEXT NOT NULL,
    requests BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, kind)
);
