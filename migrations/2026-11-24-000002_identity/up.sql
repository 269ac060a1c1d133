-- Identity and access: MFA, login sessions with rotating refresh tokens, operators,
-- break-glass grants, the platform audit log, and login throttling.

-- MFA lives on the login identity, whichever firm the person signs in to.
ALTER TABLE users
    ADD COLUMN mfa_secret         text,
    ADD COLUMN mfa_pending_secret text,
    ADD COLUMN mfa_enabled        boolean NOT NULL DEFAULT false,
    -- The last TOTP step accepted: a code is accepted once (RFC 6238 section 5.2).
    ADD COLUMN mfa_last_step      bigint;

-- Platform table: one-time recovery codes, stored as SHA-256 of high-entropy codes.
CREATE TABLE user_recovery_codes (
    user_id    uuid NOT NULL REFERENCES users (id),
    code_hash  text NOT NULL,
    used_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, code_hash)
);

-- Tenant table: one login = one session; its refresh tokens form the rotation family.
CREATE TABLE auth_sessions (
    firm_id         uuid NOT NULL REFERENCES firms (id),
    id              uuid NOT NULL,
    user_id         uuid NOT NULL REFERENCES users (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    revoked_reason  text,
    PRIMARY KEY (firm_id, id)
);
CREATE INDEX auth_sessions_user_idx ON auth_sessions (firm_id, user_id) WHERE revoked_at IS NULL;
SELECT cp_fence_tenant_table('auth_sessions');

-- Tenant table: refresh tokens, stored only as SHA-256 of 256-bit random secrets.
CREATE TABLE refresh_tokens (
    firm_id     uuid NOT NULL REFERENCES firms (id),
    id          uuid NOT NULL,
    session_id  uuid NOT NULL,
    token_hash  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    -- Set when exchanged for a new token; presenting it again is reuse.
    used_at     timestamptz,
    PRIMARY KEY (firm_id, id),
    CONSTRAINT refresh_tokens_hash_key UNIQUE (firm_id, token_hash),
    FOREIGN KEY (firm_id, session_id) REFERENCES auth_sessions (firm_id, id)
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (firm_id, session_id);
SELECT cp_fence_tenant_table('refresh_tokens');

-- Platform table: platform staff. Created by the CLI only.
CREATE TABLE operators (
    id             uuid PRIMARY KEY,
    email          text NOT NULL UNIQUE CHECK (email = lower(email)),
    display_name   text NOT NULL,
    password_hash  text NOT NULL,
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Platform table: time-limited, second-operator-approved access to one firm's content.
CREATE TABLE break_glass_grants (
    id              uuid PRIMARY KEY,
    target_firm_id  uuid NOT NULL REFERENCES firms (id),
    requested_by    uuid NOT NULL REFERENCES operators (id),
    reason          text NOT NULL CHECK (length(btrim(reason)) BETWEEN 10 AND 2000),
    minutes         integer NOT NULL CHECK (minutes BETWEEN 1 AND 240),
    created_at      timestamptz NOT NULL DEFAULT now(),
    approved_by     uuid REFERENCES operators (id),
    approved_at     timestamptz,
    -- Set on approval: approved_at + minutes. The grant ends by itself then.
    expires_at      timestamptz,
    first_activated_at timestamptz,
    revoked_at      timestamptz,
    revoked_by_operator uuid REFERENCES operators (id),
    revoked_by_user uuid REFERENCES users (id),
    CONSTRAINT break_glass_second_operator CHECK (approved_by IS NULL OR approved_by <> requested_by)
);
CREATE INDEX break_glass_grants_target_idx ON break_glass_grants (target_firm_id, created_at DESC);

-- Platform table: what operators did. Append-only, metadata only.
CREATE TABLE platform_audit_events (
    id              uuid PRIMARY KEY,
    occurred_at     timestamptz NOT NULL DEFAULT now(),
    operator_id     uuid REFERENCES operators (id),
    action          text NOT NULL CHECK (length(action) BETWEEN 1 AND 100),
    target_firm_id  uuid REFERENCES firms (id),
    target_type     text,
    target_id       text,
    result          text NOT NULL CHECK (result IN ('success', 'failure', 'denied')),
    request_id      text,
    ip              text,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX platform_audit_events_time_idx ON platform_audit_events (occurred_at DESC, id DESC);
CREATE TRIGGER platform_audit_events_append_only
    BEFORE UPDATE OR DELETE ON platform_audit_events
    FOR EACH ROW EXECUTE FUNCTION cp_reject_change();
CREATE TRIGGER platform_audit_events_no_truncate
    BEFORE TRUNCATE ON platform_audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION cp_reject_change();

-- Platform table: failed log-in counters, keyed by SHA-256 of "account|..." or "ip|...",
-- so it holds no address or email.
CREATE TABLE auth_throttle (
    key_hash           text PRIMARY KEY,
    failures           integer NOT NULL,
    window_started_at  timestamptz NOT NULL
);

-- Member counts per firm for the operators' firm list: counts only, never rows. Runs as
-- the owner role (BYPASSRLS) so it can count across firms; the application cannot.
CREATE FUNCTION cp_firm_member_counts()
RETURNS TABLE (firm_id uuid, active_members bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT m.firm_id, count(*) FILTER (WHERE m.status = 'active')
      FROM memberships m
     GROUP BY m.firm_id
$$;
REVOKE ALL ON FUNCTION cp_firm_member_counts() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cp_firm_member_counts() TO consultantpro_app;

GRANT SELECT, INSERT, UPDATE ON user_recovery_codes, auth_sessions, refresh_tokens, operators, break_glass_grants
    TO consultantpro_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON auth_throttle TO consultantpro_app;
GRANT SELECT, INSERT ON platform_audit_events TO consultantpro_app;
