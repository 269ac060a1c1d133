-- Conversations a firm has with its clients and inside the team, their messages, and
-- who has read how far. Portal users: a membership with role `client` tied to a contact.

ALTER TABLE memberships ADD COLUMN contact_id uuid;
ALTER TABLE memberships DROP CONSTRAINT memberships_role_check;
ALTER TABLE memberships ADD CONSTRAINT memberships_role_check
    CHECK (role IN ('owner', 'admin', 'staff', 'billing', 'readonly', 'client'));
-- A portal login is always some contact, and only portal logins are.
ALTER TABLE memberships ADD CONSTRAINT memberships_client_contact_check
    CHECK ((role = 'client') = (contact_id IS NOT NULL));
ALTER TABLE memberships ADD CONSTRAINT memberships_contact_fkey
    FOREIGN KEY (firm_id, contact_id) REFERENCES contacts (firm_id, id);
CREATE UNIQUE INDEX memberships_contact_idx ON memberships (firm_id, contact_id) WHERE contact_id IS NOT NULL;

CREATE TABLE conversations (
    firm_id           uuid NOT NULL REFERENCES firms (id),
    id                uuid NOT NULL,
    subject           text NOT NULL CHECK (length(btrim(subject)) BETWEEN 1 AND 300),
    subject_key       text GENERATED ALWAYS AS (lower(subject)) STORED,
    channel           text NOT NULL CHECK (channel IN ('internal', 'email', 'sms', 'portal')),
    status            text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'pending', 'closed')),
    assignee_user_id  uuid REFERENCES users (id),
    client_id         uuid,
    created_by        uuid REFERENCES users (id),
    -- The last message's seq: the next message takes last_seq + 1 under this row's lock,
    -- so seqs are gapless per conversation and a rolled-back send leaves no hole.
    last_seq          bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    last_message_at   timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, id),
    FOREIGN KEY (firm_id, client_id) REFERENCES clients (firm_id, id)
);
CREATE INDEX conversations_firm_created_idx ON conversations (firm_id, created_at, id);
CREATE INDEX conversations_firm_status_idx ON conversations (firm_id, status);
CREATE INDEX conversations_firm_assignee_idx ON conversations (firm_id, assignee_user_id);
CREATE INDEX conversations_firm_client_idx ON conversations (firm_id, client_id);
CREATE INDEX conversations_subject_trgm_idx ON conversations USING gin (subject_key gin_trgm_ops);
SELECT cp_fence_tenant_table('conversations');

-- Exactly one of user_id (a member) or contact_id (a client's person).
CREATE TABLE conversation_participants (
    firm_id          uuid NOT NULL REFERENCES firms (id),
    conversation_id  uuid NOT NULL,
    id               uuid NOT NULL,
    user_id          uuid REFERENCES users (id),
    contact_id       uuid,
    added_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, conversation_id, id),
    FOREIGN KEY (firm_id, conversation_id) REFERENCES conversations (firm_id, id) ON DELETE CASCADE,
    FOREIGN KEY (firm_id, contact_id) REFERENCES contacts (firm_id, id),
    CHECK ((user_id IS NULL) <> (contact_id IS NULL))
);
CREATE UNIQUE INDEX conversation_participants_user_idx
    ON conversation_participants (firm_id, conversation_id, user_id) WHERE user_id IS NOT NULL;
CREATE UNIQUE INDEX conversation_participants_contact_idx
    ON conversation_participants (firm_id, conversation_id, contact_id) WHERE contact_id IS NOT NULL;
CREATE INDEX conversation_participants_by_user_idx ON conversation_participants (firm_id, user_id);
CREATE INDEX conversation_participants_by_contact_idx ON conversation_participants (firm_id, contact_id);
SELECT cp_fence_tenant_table('conversation_participants');

CREATE TABLE messages (
    firm_id            uuid NOT NULL REFERENCES firms (id),
    conversation_id    uuid NOT NULL,
    seq                bigint NOT NULL CHECK (seq > 0),
    id                 uuid NOT NULL,
    author_user_id     uuid REFERENCES users (id),
    -- Set when the author is a portal user or, later, an inbound email or SMS sender.
    author_contact_id  uuid,
    body               text NOT NULL CHECK (length(body) BETWEEN 1 AND 20000),
    client_msg_id      text CHECK (length(client_msg_id) BETWEEN 1 AND 100),
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, conversation_id, seq),
    FOREIGN KEY (firm_id, conversation_id) REFERENCES conversations (firm_id, id) ON DELETE CASCADE,
    FOREIGN KEY (firm_id, author_contact_id) REFERENCES contacts (firm_id, id)
);
CREATE UNIQUE INDEX messages_id_idx ON messages (firm_id, id);
-- A resend after a reconnect finds the first copy instead of storing a second.
CREATE UNIQUE INDEX messages_client_msg_idx
    ON messages (firm_id, conversation_id, author_user_id, client_msg_id) WHERE client_msg_id IS NOT NULL;
SELECT cp_fence_tenant_table('messages');

-- How far each user (member or portal user) has read; unread = last_seq - last_read_seq.
CREATE TABLE conversation_reads (
    firm_id          uuid NOT NULL REFERENCES firms (id),
    conversation_id  uuid NOT NULL,
    user_id          uuid NOT NULL REFERENCES users (id),
    last_read_seq    bigint NOT NULL CHECK (last_read_seq >= 0),
    read_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, conversation_id, user_id),
    FOREIGN KEY (firm_id, conversation_id) REFERENCES conversations (firm_id, id) ON DELETE CASCADE
);
CREATE INDEX conversation_reads_user_idx ON conversation_reads (firm_id, user_id);
SELECT cp_fence_tenant_table('conversation_reads');

-- A conversation's participants in the order they were added, as arrays on its row (an
-- invoker function: RLS applies inside).
CREATE FUNCTION cp_conversation_members(firm uuid, conversation uuid)
RETURNS uuid[]
LANGUAGE sql STABLE AS $$
    SELECT ARRAY(SELECT p.user_id FROM conversation_participants p
                  WHERE p.firm_id = firm AND p.conversation_id = conversation AND p.user_id IS NOT NULL
                  ORDER BY p.added_at, p.id)
$$;

CREATE FUNCTION cp_conversation_contacts(firm uuid, conversation uuid)
RETURNS uuid[]
LANGUAGE sql STABLE AS $$
    SELECT ARRAY(SELECT p.contact_id FROM conversation_participants p
                  WHERE p.firm_id = firm AND p.conversation_id = conversation AND p.contact_id IS NOT NULL
                  ORDER BY p.added_at, p.id)
$$;

-- One-use WebSocket tickets: a browser trades its access token for one over HTTPS, then
-- opens the socket with it, so tokens never appear in URLs (and so in access logs).
CREATE TABLE realtime_tickets (
    firm_id      uuid NOT NULL REFERENCES firms (id),
    ticket_hash  text NOT NULL,
    user_id      uuid NOT NULL REFERENCES users (id),
    session_id   uuid NOT NULL,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (firm_id, ticket_hash),
    FOREIGN KEY (firm_id, session_id) REFERENCES auth_sessions (firm_id, id) ON DELETE CASCADE
);
CREATE INDEX realtime_tickets_expiry_idx ON realtime_tickets (firm_id, expires_at);
SELECT cp_fence_tenant_table('realtime_tickets');

GRANT SELECT, INSERT, UPDATE ON conversations, messages TO consultantpro_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON conversation_participants, conversation_reads, realtime_tickets
    TO consultantpro_app;
