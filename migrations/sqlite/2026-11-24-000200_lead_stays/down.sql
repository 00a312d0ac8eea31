DROP INDEX leads_live_created;
DROP INDEX leads_report;
DROP TABLE lead_stays;
DELETE FROM cache_meta WHERE key = 'lead_stays_built';
