mod airtable;
