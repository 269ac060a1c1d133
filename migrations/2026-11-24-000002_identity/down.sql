DROP FUNCTION cp_firm_member_counts();
DROP TABLE auth_throttle;
DROP TABLE platform_audit_events;
DROP TABLE break_glass_grants;
DROP TABLE operators;
DROP TABLE refresh_tokens;
DROP TABLE auth_sessions;
DROP TABLE user_recovery_codes;
ALTER TABLE users DROP COLUMN mfa_secret, DROP COLUMN mfa_pending_secret, DROP COLUMN mfa_enabled, DROP COLUMN mfa_last_step;
