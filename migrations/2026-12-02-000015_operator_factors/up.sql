-- Operators sign in with a second factor (TOTP, enrolled through the CLI), and a sign-out
-- ends every token the operator holds: tokens carry the session key current when they
-- were issued, and signing out draws a new one.
ALTER TABLE operators
    ADD COLUMN mfa_secret     text,
    ADD COLUMN mfa_last_step  bigint,
    ADD COLUMN session_key    uuid NOT NULL DEFAULT gen_random_uuid();
