-- Email: the mailboxes a firm has the hub watch over IMAP and reply from over SMTP, where
-- each watched folder has been read up to, every message imported or sent, its MIME
-- parts (content stored once per firm), triage, and the firm's rules.

CREATE TABLE mailboxes (
    firm_id               uuid NOT NULL REFERENCES firms (id),
    id                    uuid NOT NULL,
    name                  text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    -- The address clients write to; replies go from it.
    address               text NOT NULL CHECK (address = lower(address) AND length(address) BETWEEN 3 AND 254),
    imap_host             text NOT NULL CHECK (length(imap_host) BETWEEN 1 AND 253),
    imap_port             integer NOT NULL CHECK (imap_port BETWEEN 1 AND 65535),
    imap_tls              text NOT NULL CHECK (imap_tls IN ('tls', 'starttls', 'none')),
    imap_username         text NOT NULL CHECK (length(imap_username) BETWEEN 1 AND 254),
    -- Sealed with the configured secrets key, bound to this firm and mailbox; never returned.
    imap_password_sealed  text NOT NULL,
    folders               text[] NOT NULL DEFAULT '{INBOX}' CHECK (cardinality(folders) BETWEEN 1 AND 20),
    smtp_host             text CHECK (length(smtp_host) BETWEEN 1 AND 253),
    smtp_port             integer CHECK (smtp_port BETWEEN 1 AND 65535),
    smtp_tls              text CHECK (smtp_tls IN ('tls', 'starttls', 'none')),
    smtp_username         text CHECK (length(smtp_username) <= 254),
    smtp_password_sealed  text,
    -- Polling is for servers without IDLE.
    poll_interval_secs    integer NOT NULL DEFAULT 60 CHECK (poll_interval_secs BETWEEN 5 AND 3600),
    -- The hub changes nothing on the server unless the firm turns this on: then it sets
    -- \Seen on what it imported.
    mark_seen             boolean NOT NULL DEFAULT false,
    enabled               boolean NOT NULL DEFAULT true,
    -- Sent (with Auto-Submitted: auto-replied) to the sender of a message that starts a
    -- conversation; at most once per sender per firm setting's period.
    auto_acknowledge      text CHECK (length(auto_acknowledge) BETWEEN 1 AND 5000),
    state                 text NOT NULL DEFAULT 'starting'
                          CHECK (state IN ('starting', 'connecting', 'catching_up', 'idle', 'polling', 'failing', 'disabled')),
    state_reason          text CHECK (length(state_reason) <= 300),
    state_changed_at      timestamptz NOT NULL DEFAULT now(),
    last_sync_at          timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, id),
    CHECK ((smtp_host IS NULL) = (smtp_port IS NULL) AND (smtp_host IS NULL) = (smtp_tls IS NULL))
);
CREATE UNIQUE INDEX mailboxes_address_idx ON mailboxes (firm_id, address);
SELECT cp_fence_tenant_table('mailboxes');

-- How far each watched folder has been imported. `last_uid` is written in the same
-- transaction as the messages it covers, so a crash loses nothing and repeats nothing.
CREATE TABLE mailbox_folders (
    firm_id      uuid NOT NULL REFERENCES firms (id),
    mailbox_id   uuid NOT NULL,
    folder       text NOT NULL CHECK (length(folder) BETWEEN 1 AND 500),
    uidvalidity  bigint NOT NULL CHECK (uidvalidity > 0),
    last_uid     bigint NOT NULL DEFAULT 0 CHECK (last_uid >= 0),
    synced_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, mailbox_id, folder),
    FOREIGN KEY (firm_id, mailbox_id) REFERENCES mailboxes (firm_id, id) ON DELETE CASCADE
);
SELECT cp_fence_tenant_table('mailbox_folders');

CREATE TABLE email_settings (
    firm_id                  uuid NOT NULL REFERENCES firms (id),
    -- A reply to a closed conversation: reopen it, or start a new one.
    closed_reply             text NOT NULL DEFAULT 'reopen' CHECK (closed_reply IN ('reopen', 'new_conversation')),
    -- Threading by subject and participants looks this far back.
    subject_window_hours     integer NOT NULL DEFAULT 168 CHECK (subject_window_hours BETWEEN 0 AND 8760),
    -- At most one automatic message to one address per this period.
    auto_reply_period_hours  integer NOT NULL DEFAULT 24 CHECK (auto_reply_period_hours BETWEEN 1 AND 8760),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id)
);
SELECT cp_fence_tenant_table('email_settings');

-- Every message imported or sent. A received one is found again by its folder position
-- and, across a UIDVALIDITY change or a second folder, by its dedupe key (Message-ID, or
-- the SHA-256 of the raw message when it has none).
CREATE TABLE email_messages (
    firm_id            uuid NOT NULL REFERENCES firms (id),
    id                 uuid NOT NULL,
    direction          text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    mailbox_id         uuid,
    folder             text,
    uidvalidity        bigint,
    uid                bigint,
    dedupe_key         text NOT NULL CHECK (length(dedupe_key) BETWEEN 1 AND 1000),
    message_id         text CHECK (length(message_id) <= 998),
    in_reply_to        text[] NOT NULL DEFAULT '{}',
    "references"       text[] NOT NULL DEFAULT '{}',
    -- Outlook's Thread-Index: the 22-byte header names the thread, the rest its replies.
    thread_index       text CHECK (length(thread_index) <= 2000),
    thread_root        text CHECK (length(thread_root) <= 64),
    subject            text NOT NULL DEFAULT '' CHECK (length(subject) <= 2000),
    subject_key        text NOT NULL DEFAULT '' CHECK (length(subject_key) <= 2000),
    from_address       text CHECK (length(from_address) <= 254),
    from_name          text CHECK (length(from_name) <= 300),
    to_addresses       text[] NOT NULL DEFAULT '{}',
    cc_addresses       text[] NOT NULL DEFAULT '{}',
    reply_to           text CHECK (length(reply_to) <= 254),
    sent_at            timestamptz,
    size_bytes         bigint NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
    text_body          text NOT NULL DEFAULT '',
    -- Sanitised for display; inline cid: references point at the hub's part URLs.
    html_body          text,
    -- Headers as received (name, value), for rules and for reading the message whole.
    headers            jsonb NOT NULL DEFAULT '[]'::jsonb,
    -- Set when the message did not become part of a conversation, and why.
    triage             text CHECK (triage IN ('automatic', 'bounce', 'loop', 'ignored', 'unreadable')),
    triage_reason      text CHECK (length(triage_reason) <= 300),
    bounced            jsonb,
    conversation_id    uuid,
    chat_message_id    uuid,
    contact_id         uuid,
    -- Outbound delivery: queued, sent, failed (retried), failed_permanently.
    status             text NOT NULL DEFAULT 'received'
                       CHECK (status IN ('received', 'queued', 'sent', 'failed', 'failed_permanently')),
    error_message      text CHECK (length(error_message) <= 500),
    attempts           integer NOT NULL DEFAULT 0,
    automatic          boolean NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, id),
    FOREIGN KEY (firm_id, mailbox_id) REFERENCES mailboxes (firm_id, id) ON DELETE SET NULL (mailbox_id),
    FOREIGN KEY (firm_id, conversation_id) REFERENCES conversations (firm_id, id) ON DELETE CASCADE,
    FOREIGN KEY (firm_id, chat_message_id) REFERENCES messages (firm_id, id) ON DELETE CASCADE,
    FOREIGN KEY (firm_id, contact_id) REFERENCES contacts (firm_id, id) ON DELETE SET NULL (contact_id),
    CHECK (direction = 'outbound' OR (folder IS NOT NULL AND uidvalidity IS NOT NULL AND uid IS NOT NULL))
);
CREATE UNIQUE INDEX email_messages_position_idx
    ON email_messages (firm_id, mailbox_id, folder, uidvalidity, uid) WHERE direction = 'inbound';
CREATE UNIQUE INDEX email_messages_dedupe_idx
    ON email_messages (firm_id, mailbox_id, dedupe_key) WHERE direction = 'inbound';
CREATE INDEX email_messages_message_id_idx ON email_messages (firm_id, message_id) WHERE message_id IS NOT NULL;
CREATE INDEX email_messages_thread_root_idx ON email_messages (firm_id, thread_root) WHERE thread_root IS NOT NULL;
CREATE INDEX email_messages_subject_idx ON email_messages (firm_id, subject_key, created_at);
CREATE INDEX email_messages_conversation_idx ON email_messages (firm_id, conversation_id, created_at);
CREATE UNIQUE INDEX email_messages_chat_idx ON email_messages (firm_id, chat_message_id) WHERE chat_message_id IS NOT NULL;
CREATE INDEX email_messages_triage_idx ON email_messages (firm_id, created_at, id) WHERE triage IS NOT NULL;
SELECT cp_fence_tenant_table('email_messages');

-- Part content, once per firm however many messages carry it.
CREATE TABLE email_blobs (
    firm_id     uuid NOT NULL REFERENCES firms (id),
    sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes  bigint NOT NULL CHECK (size_bytes >= 0),
    content     bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, sha256)
);
ALTER TABLE email_blobs ALTER COLUMN content SET STORAGE EXTERNAL;
SELECT cp_fence_tenant_table('email_blobs');

-- Every MIME leaf but the bodies shown: attachments, inline images, calendar parts.
-- A part over the size limit keeps its metadata and `oversize`, without content.
CREATE TABLE email_parts (
    firm_id       uuid NOT NULL REFERENCES firms (id),
    email_id      uuid NOT NULL,
    position      integer NOT NULL CHECK (position >= 0),
    filename      text CHECK (length(filename) <= 500),
    content_type  text NOT NULL CHECK (length(content_type) <= 255),
    disposition   text NOT NULL CHECK (disposition IN ('attachment', 'inline')),
    content_id    text CHECK (length(content_id) <= 998),
    size_bytes    bigint NOT NULL CHECK (size_bytes >= 0),
    sha256        text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    oversize      boolean NOT NULL DEFAULT false,
    PRIMARY KEY (firm_id, email_id, position),
    FOREIGN KEY (firm_id, email_id) REFERENCES email_messages (firm_id, id) ON DELETE CASCADE,
    FOREIGN KEY (firm_id, sha256) REFERENCES email_blobs (firm_id, sha256),
    CHECK (oversize = (sha256 IS NULL))
);
CREATE INDEX email_parts_blob_idx ON email_parts (firm_id, sha256);
SELECT cp_fence_tenant_table('email_parts');

-- When the hub last wrote to an address automatically (acknowledgements): once a period.
CREATE TABLE email_auto_replies (
    firm_id     uuid NOT NULL REFERENCES firms (id),
    address     text NOT NULL CHECK (address = lower(address)),
    replied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, address)
);
SELECT cp_fence_tenant_table('email_auto_replies');

-- The firm's rules, run in position order on every message that is not triaged otherwise.
CREATE TABLE email_rules (
    firm_id     uuid NOT NULL REFERENCES firms (id),
    id          uuid NOT NULL,
    position    integer NOT NULL CHECK (position >= 0),
    name        text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    enabled     boolean NOT NULL DEFAULT true,
    conditions  jsonb NOT NULL,
    actions     jsonb NOT NULL,
    -- Later rules still run unless this is set.
    stop        boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, id)
);
CREATE INDEX email_rules_position_idx ON email_rules (firm_id, position, created_at);
SELECT cp_fence_tenant_table('email_rules');

-- An address that bounced: when, and what the receiving server said.
ALTER TABLE contact_emails ADD COLUMN bouncing_since timestamptz;
ALTER TABLE contact_emails ADD COLUMN bounce_status text CHECK (length(bounce_status) <= 300);

-- Rules tag conversations.
ALTER TABLE conversations ADD COLUMN tags text[] NOT NULL DEFAULT '{}';
-- The hub's mail for a conversation asks for replies at `<mailbox>+cp<token>@<domain>`, so
-- a reply that drops every threading header still finds it. Random (60 bits), made on the
-- first email out, short enough to keep the address within the 64-character local part.
ALTER TABLE conversations ADD COLUMN reply_token text CHECK (reply_token ~ '^[a-z2-7]{12}$');
CREATE UNIQUE INDEX conversations_reply_token_idx ON conversations (firm_id, reply_token) WHERE reply_token IS NOT NULL;

-- A message's delivery over its channel, SMS or email, folded into its row as JSON.
CREATE OR REPLACE FUNCTION cp_message_delivery(firm uuid, message uuid)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(
        (SELECT jsonb_build_object(
                    'channel', 'sms',
                    'direction', s.direction,
                    'status', s.status,
                    'error_code', s.error_code,
                    'error_message', s.error_message,
                    'segments', s.segments,
                    'from', s.from_number,
                    'to', s.to_number,
                    'media', s.media,
                    'updated_at', s.updated_at)
           FROM sms_messages s
          WHERE s.firm_id = firm AND s.message_id = message),
        (SELECT jsonb_build_object(
                    'channel', 'email',
                    'direction', e.direction,
                    'status', e.status,
                    'error_message', e.error_message,
                    'attempts', e.attempts,
                    'email_id', e.id,
                    'from', e.from_address,
                    'to', to_jsonb(e.to_addresses),
                    'cc', to_jsonb(e.cc_addresses),
                    'subject', e.subject,
                    'attachments', (SELECT count(*) FROM email_parts p
                                     WHERE p.firm_id = e.firm_id AND p.email_id = e.id AND p.disposition = 'attachment'),
                    'updated_at', e.updated_at)
           FROM email_messages e
          WHERE e.firm_id = firm AND e.chat_message_id = message))
$$;

-- Which firms have mailboxes (ids only), for resealing stored passwords across firms.
CREATE FUNCTION cp_firms_with_mailboxes()
RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT DISTINCT firm_id FROM mailboxes ORDER BY firm_id
$$;
REVOKE ALL ON FUNCTION cp_firms_with_mailboxes() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cp_firms_with_mailboxes() TO consultantpro_app;

GRANT SELECT, INSERT, UPDATE, DELETE ON mailboxes, mailbox_folders, email_settings, email_auto_replies, email_rules
    TO consultantpro_app;
GRANT SELECT, INSERT, UPDATE ON email_messages, email_parts TO consultantpro_app;
GRANT SELECT, INSERT ON email_blobs TO consultantpro_app;
