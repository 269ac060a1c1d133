-- Invitations instead of passwords chosen by someone else, and password resets.
-- Neither holds a usable secret at rest: a token's hash is written when its email is
-- sent, and sending again replaces it (the earlier email's link stops working).

CREATE TABLE invitations (
    firm_id           uuid NOT NULL REFERENCES firms (id),
    id                uuid NOT NULL,
    email             text NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
    role              text NOT NULL CHECK (role IN ('owner', 'admin', 'staff', 'billing', 'readonly', 'client')),
    contact_id        uuid,
    invited_by        uuid REFERENCES users (id),
    token_hash        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    sent_at           timestamptz,
    accepted_at       timestamptz,
    accepted_user_id  uuid REFERENCES users (id),
    revoked_at        timestamptz,
    PRIMARY KEY (firm_id, id),
    FOREIGN KEY (firm_id, contact_id) REFERENCES contacts (firm_id, id),
    CHECK ((role = 'client') = (contact_id IS NOT NULL))
);
CREATE UNIQUE INDEX invitations_token_idx ON invitations (firm_id, token_hash) WHERE token_hash IS NOT NULL;
-- One open invitation per address per firm: resend it rather than invite twice.
CREATE UNIQUE INDEX invitations_open_idx ON invitations (firm_id, email)
    WHERE accepted_at IS NULL AND revoked_at IS NULL;
CREATE INDEX invitations_firm_created_idx ON invitations (firm_id, created_at, id);
SELECT cp_fence_tenant_table('invitations');

CREATE TABLE password_resets (
    firm_id     uuid NOT NULL REFERENCES firms (id),
    id          uuid NOT NULL,
    user_id     uuid NOT NULL REFERENCES users (id),
    token_hash  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    sent_at     timestamptz,
    used_at     timestamptz,
    PRIMARY KEY (firm_id, id)
);
CREATE UNIQUE INDEX password_resets_token_idx ON password_resets (firm_id, token_hash) WHERE token_hash IS NOT NULL;
CREATE INDEX password_resets_user_idx ON password_resets (firm_id, user_id);
SELECT cp_fence_tenant_table('password_resets');

GRANT SELECT, INSERT, UPDATE ON invitations, password_resets TO consultantpro_app;

-- A login's open sessions, across firms, for ending them all at once.
CREATE INDEX auth_sessions_open_user_idx ON auth_sessions (user_id) WHERE revoked_at IS NULL;

-- Ends every open session of a login in every firm (a password change or reset), but
-- `keep` (the session that changed the password, or NULL). Returns how many ended; reads
-- and writes nothing else. Only for a login that belongs to the firm set for the
-- transaction, so no firm can end another firm's people's sessions at will.
CREATE FUNCTION cp_revoke_user_sessions(member uuid, keep uuid, reason text)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    ended integer;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM memberships m
                    WHERE m.user_id = member
                      AND m.firm_id = NULLIF(current_setting('app.current_firm_id', true), '')::uuid) THEN
        RETURN 0;
    END IF;
    UPDATE auth_sessions
       SET revoked_at = now(), revoked_reason = reason
     WHERE user_id = member AND revoked_at IS NULL AND id IS DISTINCT FROM keep;
    GET DIAGNOSTICS ended = ROW_COUNT;
    RETURN ended;
END
$$;
REVOKE ALL ON FUNCTION cp_revoke_user_sessions(uuid, uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cp_revoke_user_sessions(uuid, uuid, text) TO consultantpro_app;
