-- Proposals for a prospect: versioned line items with totals computed on the server.
-- A sent version is frozen; changing a sent proposal starts a new draft version.

CREATE TABLE proposals (
    firm_id          uuid NOT NULL REFERENCES firms (id),
    id               uuid NOT NULL,
    prospect_id      uuid NOT NULL,
    title            text NOT NULL CHECK (length(btrim(title)) BETWEEN 1 AND 200),
    currency         text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    status           text NOT NULL DEFAULT 'draft'
                     CHECK (status IN ('draft', 'sent', 'accepted', 'declined', 'expired')),
    current_version  integer NOT NULL DEFAULT 1,
    sent_at          timestamptz,
    decided_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, id),
    FOREIGN KEY (firm_id, prospect_id) REFERENCES prospects (firm_id, id)
);
CREATE INDEX proposals_firm_prospect_idx ON proposals (firm_id, prospect_id, created_at);
SELECT cp_fence_tenant_table('proposals');

-- One row per version; line items as validated JSON, totals in integer minor units.
CREATE TABLE proposal_versions (
    firm_id         uuid NOT NULL REFERENCES firms (id),
    proposal_id     uuid NOT NULL,
    version         integer NOT NULL CHECK (version >= 1),
    line_items      jsonb NOT NULL,
    subtotal_minor  bigint NOT NULL,
    tax_minor       bigint NOT NULL,
    total_minor     bigint NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, proposal_id, version),
    FOREIGN KEY (firm_id, proposal_id) REFERENCES proposals (firm_id, id)
);
SELECT cp_fence_tenant_table('proposal_versions');

GRANT SELECT, INSERT, UPDATE ON proposals, proposal_versions TO consultantpro_app;
