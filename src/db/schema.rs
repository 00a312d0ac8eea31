//! Diesel table definitions, written by hand to match `migrations/sqlite` (kept backend-neutral so a
//! PostgreSQL twin can share it). `leads_fts` is SQLite-only and is queried with raw SQL in
//! `crate::leads::search`.

diesel::table! {
    leads (id) {
        rid -> BigInt,
        id -> Text,
        airtable_id -> Nullable<Text>,
        full_name -> Text,
        email -> Nullable<Text>,
        company -> Nullable<Text>,
        title -> Nullable<Text>,
        linkedin_url -> Nullable<Text>,
        website -> Nullable<Text>,
        phone -> Nullable<Text>,
        location -> Nullable<Text>,
        industry -> Nullable<Text>,
        company_size -> Nullable<Text>,
        status -> Text,
        source -> Nullable<Text>,
        score -> Nullable<Double>,
        verified -> Bool,
        enriched -> Bool,
        needs_enrichment -> Bool,
        scraped_at -> Nullable<Timestamp>,
        enriched_at -> Nullable<Timestamp>,
        contacted_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
        version -> Integer,
        extra -> Text,
        remote_fields -> Nullable<Text>,
        remote_modified_at -> Nullable<Timestamp>,
        synced_at -> Nullable<Timestamp>,
        sync_state -> Text,
        email_key -> Nullable<Text>,
        linkedin_key -> Nullable<Text>,
        name_company_key -> Nullable<Text>,
        company_key -> Nullable<Text>,
    }
}

diesel::table! {
    lead_events (id) {
        id -> BigInt,
        lead_id -> Text,
        kind -> Text,
        actor -> Text,
        changes -> Text,
        message -> Nullable<Text>,
        at -> Timestamp,
    }
}

diesel::table! {
    enrichments (id) {
        id -> BigInt,
        lead_id -> Text,
        provider -> Text,
        data -> Text,
        confidence -> Nullable<Double>,
        at -> Timestamp,
    }
}

diesel::table! {
    campaigns (id) {
        id -> Text,
        name -> Text,
        description -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    campaign_leads (campaign_id, lead_id) {
        campaign_id -> Text,
        lead_id -> Text,
        subject -> Nullable<Text>,
        body -> Nullable<Text>,
        status -> Text,
        sent_at -> Nullable<Timestamp>,
        replied_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    outbox (lead_id) {
        lead_id -> Text,
        operation -> Text,
        fields -> Text,
        seq -> Integer,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        last_error -> Nullable<Text>,
        state -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    sync_runs (id) {
        id -> BigInt,
        kind -> Text,
        trigger -> Text,
        started_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
        outcome -> Text,
        phase -> Nullable<Text>,
        fetched -> Integer,
        created -> Integer,
        updated -> Integer,
        deleted -> Integer,
        pushed -> Integer,
        failed -> Integer,
        conflicts -> Integer,
        requests -> Integer,
        retries -> Integer,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    sync_conflicts (id) {
        id -> BigInt,
        lead_id -> Text,
        field -> Text,
        local_value -> Nullable<Text>,
        remote_value -> Nullable<Text>,
        base_value -> Nullable<Text>,
        resolution -> Text,
        created_at -> Timestamp,
        resolved_at -> Nullable<Timestamp>,
        resolved_by -> Nullable<Text>,
    }
}

diesel::table! {
    cache_meta (key) {
        key -> Text,
        value -> Text,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    import_log (id) {
        id -> BigInt,
        file -> Text,
        started_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
        imported -> Integer,
        merged -> Integer,
        failed -> Integer,
        status -> Text,
        dry_run -> Bool,
        errors -> Text,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Text,
        name -> Text,
        role -> Text,
        token_hash -> Text,
        prefix -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    backups (id) {
        id -> BigInt,
        file -> Text,
        reason -> Text,
        created_at -> Timestamp,
        size_bytes -> BigInt,
        duration_ms -> BigInt,
        lead_count -> BigInt,
        outcome -> Text,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    airtable_usage (day, kind) {
        day -> Text,
        kind -> Text,
        requests -> BigInt,
    }
}

diesel::table! {
    lead_stays (id) {
        id -> BigInt,
        lead_id -> Text,
        status -> Text,
        from_status -> Nullable<Text>,
        entered_at -> Timestamp,
        left_at -> Nullable<Timestamp>,
        days -> Nullable<Double>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    leads,
    lead_stays,
    lead_events,
    enrichments,
    campaigns,
    campaign_leads,
    outbox,
    sync_runs,
    sync_conflicts,
);

diesel::joinable!(lead_events -> leads (lead_id));
diesel::joinable!(enrichments -> leads (lead_id));
diesel::joinable!(campaign_leads -> campaigns (campaign_id));
diesel::joinable!(campaign_leads -> leads (lead_id));
diesel::joinable!(outbox -> leads (lead_id));
diesel::joinable!(sync_conflicts -> leads (lead_id));
diesel::joinable!(lead_stays -> leads (lead_id));
