-- Finance: invoices, payments, credit notes, gapless document numbers, idempotent
-- creation, and Stripe card payments. Money is integer minor units everywhere.

-- Per-firm numbering: the pattern for each kind of document, e.g. INV-{YYYY}-{seq:05}.
CREATE TABLE finance_settings (
    firm_id               uuid PRIMARY KEY REFERENCES firms (id),
    invoice_pattern       text NOT NULL DEFAULT 'INV-{YYYY}-{seq:05}' CHECK (length(invoice_pattern) BETWEEN 1 AND 60),
    credit_note_pattern   text NOT NULL DEFAULT 'CN-{YYYY}-{seq:05}' CHECK (length(credit_note_pattern) BETWEEN 1 AND 60),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
SELECT cp_fence_tenant_table('finance_settings');

-- The next number of each kind. Taken under this row's lock in the transaction that uses
-- it, so a rolled-back send gives its number back: gapless, and unique under concurrency.
CREATE TABLE document_sequences (
    firm_id     uuid NOT NULL REFERENCES firms (id),
    kind        text NOT NULL CHECK (kind IN ('invoice', 'credit_note')),
    last_value  bigint NOT NULL CHECK (last_value >= 0),
    PRIMARY KEY (firm_id, kind)
);
SELECT cp_fence_tenant_table('document_sequences');

CREATE TABLE invoices (
    firm_id          uuid NOT NULL REFERENCES firms (id),
    id               uuid NOT NULL,
    client_id        uuid NOT NULL,
    -- Assigned when the invoice is sent, never before.
    number           text,
    status           text NOT NULL DEFAULT 'draft'
                     CHECK (status IN ('draft', 'sent', 'partially_paid', 'paid', 'void')),
    currency         text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    issue_date       date NOT NULL,
    due_date         date NOT NULL CHECK (due_date >= issue_date),
    payment_terms    text CHECK (length(payment_terms) <= 200),
    notes            text CHECK (length(notes) <= 5000),
    line_items       jsonb NOT NULL DEFAULT '[]'::jsonb,
    subtotal_minor   bigint NOT NULL DEFAULT 0 CHECK (subtotal_minor >= 0),
    discount_minor   bigint NOT NULL DEFAULT 0 CHECK (discount_minor >= 0),
    tax_minor        bigint NOT NULL DEFAULT 0 CHECK (tax_minor >= 0),
    total_minor      bigint NOT NULL DEFAULT 0 CHECK (total_minor >= 0),
    -- Kept by the same transactions that add payments and credit notes.
    paid_minor       bigint NOT NULL DEFAULT 0 CHECK (paid_minor >= 0),
    credited_minor   bigint NOT NULL DEFAULT 0 CHECK (credited_minor >= 0),
    sent_at          timestamptz,
    voided_at        timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, id),
    FOREIGN KEY (firm_id, client_id) REFERENCES clients (firm_id, id),
    CONSTRAINT invoices_number_key UNIQUE (firm_id, number),
    -- The balance never goes below zero, whatever path money takes.
    CHECK (paid_minor + credited_minor <= total_minor),
    -- A draft has no number; anything sent has one (a draft voided unsent keeps none).
    CHECK (status <> 'draft' OR number IS NULL),
    CHECK (status IN ('draft', 'void') OR number IS NOT NULL)
);
CREATE INDEX invoices_firm_created_idx ON invoices (firm_id, created_at, id);
CREATE INDEX invoices_firm_client_idx ON invoices (firm_id, client_id);
CREATE INDEX invoices_firm_open_idx ON invoices (firm_id, due_date) WHERE status IN ('sent', 'partially_paid');
SELECT cp_fence_tenant_table('invoices');

-- Money received (positive) or refunded (negative). Entries are never edited.
CREATE TABLE payments (
    firm_id        uuid NOT NULL REFERENCES firms (id),
    id             uuid NOT NULL,
    invoice_id     uuid NOT NULL,
    amount_minor   bigint NOT NULL CHECK (amount_minor <> 0),
    method         text NOT NULL CHECK (method IN ('card', 'ach', 'bank_transfer', 'cash', 'check', 'other')),
    received_on    date NOT NULL,
    reference      text CHECK (length(reference) <= 200),
    refund_of      uuid,
    created_by     uuid REFERENCES users (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, id),
    FOREIGN KEY (firm_id, invoice_id) REFERENCES invoices (firm_id, id),
    FOREIGN KEY (firm_id, refund_of) REFERENCES payments (firm_id, id),
    CHECK ((refund_of IS NULL) = (amount_minor > 0))
);
CREATE INDEX payments_firm_invoice_idx ON payments (firm_id, invoice_id);
CREATE INDEX payments_firm_received_idx ON payments (firm_id, received_on);
SELECT cp_fence_tenant_table('payments');

-- The only way to reduce what a sent invoice asks for.
CREATE TABLE credit_notes (
    firm_id        uuid NOT NULL REFERENCES firms (id),
    id             uuid NOT NULL,
    invoice_id     uuid NOT NULL,
    number         text NOT NULL,
    amount_minor   bigint NOT NULL CHECK (amount_minor > 0),
    reason         text NOT NULL CHECK (length(btrim(reason)) BETWEEN 1 AND 500),
    created_by     uuid REFERENCES users (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, id),
    FOREIGN KEY (firm_id, invoice_id) REFERENCES invoices (firm_id, id),
    CONSTRAINT credit_notes_number_key UNIQUE (firm_id, number)
);
CREATE INDEX credit_notes_firm_invoice_idx ON credit_notes (firm_id, invoice_id);
SELECT cp_fence_tenant_table('credit_notes');

-- `Idempotency-Key` on creation: the first result is kept and returned for a repeat.
CREATE TABLE idempotency_keys (
    firm_id        uuid NOT NULL REFERENCES firms (id),
    scope          text NOT NULL,
    key            text NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
    request_hash   text NOT NULL,
    status         smallint NOT NULL,
    response       jsonb NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, scope, key)
);
SELECT cp_fence_tenant_table('idempotency_keys');

-- Card payments through Stripe: the intents created, and the webhook events handled
-- (each once, by event id).
CREATE TABLE stripe_payment_intents (
    firm_id        uuid NOT NULL REFERENCES firms (id),
    id             text NOT NULL,
    invoice_id     uuid NOT NULL,
    amount_minor   bigint NOT NULL CHECK (amount_minor > 0),
    currency       text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, id),
    FOREIGN KEY (firm_id, invoice_id) REFERENCES invoices (firm_id, id)
);
SELECT cp_fence_tenant_table('stripe_payment_intents');

CREATE TABLE stripe_events (
    firm_id        uuid NOT NULL REFERENCES firms (id),
    id             text NOT NULL,
    kind           text NOT NULL,
    -- recorded: a payment was stored; ignored: nothing to do; unapplied: money arrived
    -- that the invoice could not take (staff refund it in Stripe).
    outcome        text NOT NULL CHECK (outcome IN ('recorded', 'ignored', 'unapplied')),
    received_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, id)
);
SELECT cp_fence_tenant_table('stripe_events');

GRANT SELECT, INSERT, UPDATE ON finance_settings, document_sequences, invoices, idempotency_keys, stripe_events
    TO consultantpro_app;
-- Money entries are never edited.
GRANT SELECT, INSERT ON payments, credit_notes, stripe_payment_intents TO consultantpro_app;
