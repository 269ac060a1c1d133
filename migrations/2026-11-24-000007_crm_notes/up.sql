-- Notes on a client, shown on its timeline with its conversations and changes.
CREATE TABLE client_notes (
    firm_id         uuid NOT NULL REFERENCES firms (id),
    id              uuid NOT NULL,
    client_id       uuid NOT NULL,
    author_user_id  uuid REFERENCES users (id),
    body            text NOT NULL CHECK (length(btrim(body)) BETWEEN 1 AND 10000),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, id),
    FOREIGN KEY (firm_id, client_id) REFERENCES clients (firm_id, id)
);
CREATE INDEX client_notes_client_idx ON client_notes (firm_id, client_id, created_at DESC);
SELECT cp_fence_tenant_table('client_notes');
-- The timeline reads a client's changes from the audit log by target.
CREATE INDEX audit_events_target_idx ON audit_events (firm_id, target_type, target_id, occurred_at DESC);
GRANT SELECT, INSERT ON client_notes TO consultantpro_app;
