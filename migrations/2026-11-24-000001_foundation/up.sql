-- Foundation: platform tables (firms, users), the first tenant tables (memberships,
-- audit_events), and the helper every later migration uses to fence a tenant table.
--
-- Runs as the owner role (cp_owner). The application's login role (cp_app by default)
-- gets its privileges through the NOLOGIN group role `consultantpro_app`, which the
-- set-up script creates and grants to it, so the login role's name stays configurable.

-- A tenant table: RLS enabled and forced (forced so even the owner is fenced), and one
-- policy that admits only rows of the firm named by the transaction-local setting.
-- NULLIF: once a transaction that set it ends, the setting reads '' on that connection.
CREATE FUNCTION cp_fence_tenant_table(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format(
        'CREATE POLICY firm_isolation ON %s '
        'USING (firm_id = NULLIF(current_setting(''app.current_firm_id'', true), '''')::uuid) '
        'WITH CHECK (firm_id = NULLIF(current_setting(''app.current_firm_id'', true), '''')::uuid)',
        tbl);
END
$$;
REVOKE ALL ON FUNCTION cp_fence_tenant_table(regclass) FROM PUBLIC;

-- Append-only tables reject every change after insert, whoever asks.
CREATE FUNCTION cp_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END
$$;

-- Platform table: the firm directory. Holds no tenant content.
CREATE TABLE firms (
    id          uuid PRIMARY KEY,
    slug        text NOT NULL UNIQUE
                CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    name        text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Platform table: login identities. A person may belong to several firms.
CREATE TABLE users (
    id             uuid PRIMARY KEY,
    email          text NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
    display_name   text NOT NULL CHECK (length(display_name) <= 200),
    password_hash  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email)
);

-- Tenant table: who belongs to a firm, and as what.
CREATE TABLE memberships (
    firm_id     uuid NOT NULL REFERENCES firms (id),
    user_id     uuid NOT NULL REFERENCES users (id),
    role        text NOT NULL CHECK (role IN ('owner', 'admin', 'staff', 'billing', 'readonly')),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deactivated')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, user_id)
);
SELECT cp_fence_tenant_table('memberships');

-- Tenant table: what happened in a firm. Metadata only: never message bodies or documents.
CREATE TABLE audit_events (
    firm_id      uuid NOT NULL REFERENCES firms (id),
    id           uuid NOT NULL,
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    actor_type   text NOT NULL CHECK (actor_type IN ('user', 'operator', 'system')),
    actor_id     uuid,
    action       text NOT NULL CHECK (length(action) BETWEEN 1 AND 100),
    target_type  text,
    target_id    text,
    result       text NOT NULL CHECK (result IN ('success', 'failure', 'denied')),
    request_id   text,
    ip           text,
    metadata     jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (firm_id, id)
);
CREATE INDEX audit_events_firm_time_idx ON audit_events (firm_id, occurred_at DESC, id DESC);
SELECT cp_fence_tenant_table('audit_events');
CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION cp_reject_change();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION cp_reject_change();

GRANT SELECT, INSERT, UPDATE ON firms, users, memberships TO consultantpro_app;
GRANT SELECT, INSERT ON audit_events TO consultantpro_app;
