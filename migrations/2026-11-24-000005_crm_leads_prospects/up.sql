-- CRM pipeline: leads (people or companies who might become clients) and prospects
-- (opportunities with a client). Money is integer minor units with an ISO 4217 code.

CREATE TABLE leads (
    firm_id                uuid NOT NULL REFERENCES firms (id),
    id                     uuid NOT NULL,
    source                 text CHECK (length(source) <= 100),
    status                 text NOT NULL DEFAULT 'new'
                           CHECK (status IN ('new', 'contacted', 'qualified', 'disqualified', 'converted')),
    first_name             text NOT NULL DEFAULT '' CHECK (length(first_name) <= 100),
    last_name              text NOT NULL DEFAULT '' CHECK (length(last_name) <= 100),
    company                text CHECK (length(company) <= 200),
    email                  text CHECK (email = lower(email)),
    phone                  text CHECK (phone ~ '^\+[1-9][0-9]{1,14}$'),
    estimated_value_minor  bigint CHECK (estimated_value_minor >= 0),
    currency               text CHECK (currency ~ '^[A-Z]{3}$'),
    converted_at           timestamptz,
    client_id              uuid,
    contact_id             uuid,
    prospect_id            uuid,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, id),
    CHECK ((status = 'converted') = (converted_at IS NOT NULL))
);
CREATE INDEX leads_firm_created_idx ON leads (firm_id, created_at, id);
CREATE INDEX leads_firm_status_idx ON leads (firm_id, status);
CREATE INDEX leads_firm_email_idx ON leads (firm_id, email);
SELECT cp_fence_tenant_table('leads');

CREATE TABLE prospects (
    firm_id              uuid NOT NULL REFERENCES firms (id),
    id                   uuid NOT NULL,
    client_id            uuid NOT NULL,
    contact_id           uuid,
    name                 text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    stage                text NOT NULL DEFAULT 'discovery'
                         CHECK (stage IN ('discovery', 'proposal', 'negotiation', 'won', 'lost')),
    value_minor          bigint NOT NULL DEFAULT 0 CHECK (value_minor >= 0),
    currency             text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    expected_close_date  date,
    probability          smallint CHECK (probability BETWEEN 0 AND 100),
    owner_user_id        uuid REFERENCES users (id),
    lead_id              uuid,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, id),
    FOREIGN KEY (firm_id, client_id) REFERENCES clients (firm_id, id),
    FOREIGN KEY (firm_id, contact_id) REFERENCES contacts (firm_id, id)
);
CREATE INDEX prospects_firm_created_idx ON prospects (firm_id, created_at, id);
CREATE INDEX prospects_firm_client_idx ON prospects (firm_id, client_id);
SELECT cp_fence_tenant_table('prospects');

GRANT SELECT, INSERT, UPDATE ON leads, prospects TO consultantpro_app;
