-- Support tickets: what a client asked for, who works on it, and where it stands. A ticket
-- may be linked to the conversation it came from (any channel): messages there count as
-- the customer's or the agents' turns.
CREATE TABLE tickets (
    firm_id                    uuid NOT NULL REFERENCES firms (id),
    id                         uuid NOT NULL,
    subject                    text NOT NULL CHECK (length(btrim(subject)) BETWEEN 1 AND 300),
    status                     text NOT NULL DEFAULT 'new'
                               CHECK (status IN ('new', 'open', 'pending', 'on_hold', 'solved', 'closed')),
    priority                   text NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    assignee_user_id           uuid REFERENCES users (id),
    team                       text CHECK (length(team) BETWEEN 1 AND 100),
    tags                       text[] NOT NULL DEFAULT '{}' CHECK (cardinality(tags) <= 20),
    requester_contact_id       uuid,
    conversation_id            uuid,
    created_by                 uuid REFERENCES users (id),
    first_response_at          timestamptz,
    last_customer_message_at   timestamptz,
    last_agent_response_at     timestamptz,
    solved_at                  timestamptz,
    closed_at                  timestamptz,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, id),
    FOREIGN KEY (firm_id, requester_contact_id) REFERENCES contacts (firm_id, id),
    FOREIGN KEY (firm_id, conversation_id) REFERENCES conversations (firm_id, id)
);
CREATE INDEX tickets_firm_created_idx ON tickets (firm_id, created_at, id);
CREATE INDEX tickets_firm_status_idx ON tickets (firm_id, status);
CREATE INDEX tickets_firm_assignee_idx ON tickets (firm_id, assignee_user_id);
CREATE INDEX tickets_firm_requester_idx ON tickets (firm_id, requester_contact_id);
-- A conversation feeds one ticket that is not closed at a time.
CREATE UNIQUE INDEX tickets_open_conversation_idx ON tickets (firm_id, conversation_id)
    WHERE conversation_id IS NOT NULL AND status <> 'closed';
SELECT cp_fence_tenant_table('tickets');

-- A ticket's activity, oldest first: metadata of each change, never message bodies.
CREATE TABLE ticket_events (
    firm_id     uuid NOT NULL REFERENCES firms (id),
    ticket_id   uuid NOT NULL,
    id          uuid NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('created', 'changed', 'customer_message', 'agent_response', 'reopened')),
    actor_type  text NOT NULL CHECK (actor_type IN ('user', 'contact', 'system')),
    actor_id    uuid,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb,
    at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, ticket_id, id),
    FOREIGN KEY (firm_id, ticket_id) REFERENCES tickets (firm_id, id) ON DELETE CASCADE
);
SELECT cp_fence_tenant_table('ticket_events');

GRANT SELECT, INSERT, UPDATE ON tickets TO consultantpro_app;
GRANT SELECT, INSERT ON ticket_events TO consultantpro_app;
