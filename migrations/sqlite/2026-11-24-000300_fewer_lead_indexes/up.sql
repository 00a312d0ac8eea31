-- Indexes every lead write paid for and no query needs: each is a prefix of, or the live-leads
-- copy of, another index (checked with EXPLAIN QUERY PLAN; see `crate::leads::dedup` and
-- `crate::leads::query`). Twelve indexes on `leads` remain, two of them UNIQUE constraints.
--   leads_status            (status): leads_status_updated (status, updated_at) and leads_report
--                           (status, source, enriched, deleted_at) start with it.
--   leads_created_at        (created_at): leads_live_created (created_at, deleted_at) starts with it.
--   leads_name_company_key  (name_company_key): every lookup by it is over live leads and uses the
--                           partial leads_dedup_name.
--   leads_company           (company): filters use company_key; sorting by company sorts
--                           COALESCE(company, ''), which no index serves.
DROP INDEX leads_status;
DROP INDEX leads_created_at;
DROP INDEX leads_name_company_key;
DROP INDEX leads_company;
