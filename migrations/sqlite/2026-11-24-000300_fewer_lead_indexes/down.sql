CREATE INDEX leads_status ON leads (status);
CREATE INDEX leads_name_company_key ON leads (name_company_key);
CREATE INDEX leads_company ON leads (company);
