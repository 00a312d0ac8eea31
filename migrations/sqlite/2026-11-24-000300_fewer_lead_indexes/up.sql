-- Indexes every lead write paid for and no query needs: each is a prefix of, or the live-leads
-- copy of, another index (checked with EXPLAIN QUERY PLAN; see `crate::leads::dedup` and
-- `crate::leads::query`). Thirteen indexes on `leads` remain, two of them UNIQUE constraints.
-- Kept on purpose: leads_created_at (created_at), although leads_live_created starts with it: the
-- default list order `created_at DESC, rid DESC` is served whole by it (the rowid ends every
-- index), while leads_live_created needs a sort of the ties.
--   leads_status            (status): leads_status_updated (status, updated_at) and leads_report
--                           (status, source, enriched, deleted_at) start with it.
--   leads_name_company_key  (name_company_key): every lookup by it is over live leads and uses the
--                           partial leads_dedup_name.
--   leads_company           (company): filters use company_key; sorting by company sorts
--                           COALESCE(company, ''), which no index serves.
DROP INDEX leads_status;
DROP INDEX leads_name_company_key;
DROP INDEX leads_company;
