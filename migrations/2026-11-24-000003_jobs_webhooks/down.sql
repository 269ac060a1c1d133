DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
DROP FUNCTION cp_job_counts();
DROP FUNCTION cp_claim_jobs(text, integer, integer, uuid);
DROP TABLE jobs;
