-- CRM: clients (organisations) and contacts (people), with the email and phone indexes
-- that email and SMS ingestion use to map a sender to a contact.

-- Trigram indexes make substring search on names and emails fast. pg_trgm is a trusted
-- extension: the database owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE clients (
    firm_id        uuid NOT NULL REFERENCES firms (id),
    id             uuid NOT NULL,
    name           text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    -- Sort and search key; generated so it can never disagree with `name`.
    name_key       text GENERATED ALWAYS AS (lower(name)) STORED,
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    industry       text CHECK (length(industry) <= 100),
    address        jsonb,
    tags           text[] NOT NULL DEFAULT '{}',
    owner_user_id  uuid REFERENCES users (id),
    custom_fields  jsonb NOT NULL DEFAULT '{}'::jsonb,
    archived_at    timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, id)
);
CREATE INDEX clients_firm_name_idx ON clients (firm_id, name_key, id);
CREATE INDEX clients_firm_created_idx ON clients (firm_id, created_at, id);
CREATE INDEX clients_name_trgm_idx ON clients USING gin (name_key gin_trgm_ops);
CREATE INDEX clients_tags_idx ON clients USING gin (tags);
SELECT cp_fence_tenant_table('clients');

CREATE TABLE contacts (
    firm_id        uuid NOT NULL REFERENCES firms (id),
    id             uuid NOT NULL,
    first_name     text NOT NULL CHECK (length(first_name) <= 100),
    last_name      text NOT NULL CHECK (length(last_name) <= 100),
    name_key       text GENERATED ALWAYS AS (lower(btrim(first_name || ' ' || last_name))) STORED,
    title          text CHECK (length(title) <= 200),
    client_id      uuid,
    portal_access  boolean NOT NULL DEFAULT false,
    archived_at    timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, id),
    FOREIGN KEY (firm_id, client_id) REFERENCES clients (firm_id, id),
    CHECK (length(btrim(first_name || last_name)) > 0)
);
CREATE INDEX contacts_firm_name_idx ON contacts (firm_id, name_key, id);
CREATE INDEX contacts_firm_created_idx ON contacts (firm_id, created_at, id);
CREATE INDEX contacts_firm_client_idx ON contacts (firm_id, client_id);
CREATE INDEX contacts_name_trgm_idx ON contacts USING gin (name_key gin_trgm_ops);
SELECT cp_fence_tenant_table('contacts');

-- An address belongs to one contact per firm: ingestion maps a sender by it.
CREATE TABLE contact_emails (
    firm_id     uuid NOT NULL REFERENCES firms (id),
    email       text NOT NULL CHECK (email = lower(email)),
    contact_id  uuid NOT NULL,
    position    smallint NOT NULL,
    PRIMARY KEY (firm_id, email),
    FOREIGN KEY (firm_id, contact_id) REFERENCES contacts (firm_id, id) ON DELETE CASCADE
);
CREATE INDEX contact_emails_contact_idx ON contact_emails (firm_id, contact_id);
CREATE INDEX contact_emails_trgm_idx ON contact_emails USING gin (email gin_trgm_ops);
SELECT cp_fence_tenant_table('contact_emails');

-- E.164 numbers; several contacts may share one (a switchboard), so not unique.
CREATE TABLE contact_phones (
    firm_id     uuid NOT NULL REFERENCES firms (id),
    contact_id  uuid NOT NULL,
    phone       text NOT NULL CHECK (phone ~ '^\+[1-9][0-9]{1,14}$'),
    position    smallint NOT NULL,
    PRIMARY KEY (firm_id, contact_id, phone),
    FOREIGN KEY (firm_id, contact_id) REFERENCES contacts (firm_id, id) ON DELETE CASCADE
);
CREATE INDEX contact_phones_lookup_idx ON contact_phones (firm_id, phone);
SELECT cp_fence_tenant_table('contact_phones');

GRANT SELECT, INSERT, UPDATE ON clients, contacts TO consultantpro_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON contact_emails, contact_phones TO consultantpro_app;
