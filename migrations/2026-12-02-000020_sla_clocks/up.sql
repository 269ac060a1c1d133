-- Each ticket's SLA clocks, one per metric, as the clock value of `domain::sla_clock`
-- (seconds of counted open time, when it runs since, calendar time paused) with the
-- moments that follow from it in the policy's calendar, kept for the timers: `due_at`
-- (the target reached) and `warn_at` (the policy's warning share reached).
CREATE TABLE sla_clocks (
    firm_id          uuid NOT NULL REFERENCES firms (id),
    ticket_id        uuid NOT NULL,
    metric           text NOT NULL CHECK (metric IN ('first_response', 'next_response', 'resolution')),
    policy_id        uuid,
    target_seconds   bigint NOT NULL CHECK (target_seconds > 0),
    elapsed_seconds  bigint NOT NULL DEFAULT 0 CHECK (elapsed_seconds >= 0),
    running_since    timestamptz,
    paused_seconds   bigint NOT NULL DEFAULT 0 CHECK (paused_seconds >= 0),
    paused_since     timestamptz,
    state            text NOT NULL CHECK (state IN ('running', 'paused', 'met', 'breached', 'stopped')),
    breached_at      timestamptz,
    ended_at         timestamptz,
    due_at           timestamptz,
    warn_at          timestamptz,
    warned_at        timestamptz,
    started_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, ticket_id, metric),
    FOREIGN KEY (firm_id, ticket_id) REFERENCES tickets (firm_id, id) ON DELETE CASCADE
);
-- What the firm's timers wait for: running clocks not yet breached.
CREATE INDEX sla_clocks_due_idx ON sla_clocks (firm_id, due_at)
    WHERE running_since IS NOT NULL AND breached_at IS NULL;
SELECT cp_fence_tenant_table('sla_clocks');

GRANT SELECT, INSERT, UPDATE, DELETE ON sla_clocks TO consultantpro_app;
