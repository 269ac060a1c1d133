ALTER TABLE operators DROP COLUMN session_key, DROP COLUMN mfa_last_step, DROP COLUMN mfa_secret;
