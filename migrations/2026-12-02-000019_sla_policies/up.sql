-- SLA policies: which tickets they cover (ordered conditions; the first active policy that
-- matches a ticket applies) and the targets per priority, counted in a business calendar's
-- open time or, without one, around the clock.
CREATE TABLE sla_policies (
    firm_id                       uuid NOT NULL REFERENCES firms (id),
    id                            uuid NOT NULL,
    name                          text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    position                      integer NOT NULL CHECK (position >= 0),
    active                        boolean NOT NULL DEFAULT true,
    conditions                    jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(conditions) = 'object'),
    targets                       jsonb NOT NULL CHECK (jsonb_typeof(targets) = 'object'),
    business_calendar_id          uuid,
    pause_statuses                text[] NOT NULL DEFAULT '{pending,on_hold}'
                                  CHECK (pause_statuses <@ ARRAY['pending', 'on_hold']::text[]),
    warning_percent               integer NOT NULL DEFAULT 75 CHECK (warning_percent BETWEEN 1 AND 99),
    restart_resolution_on_reopen  boolean NOT NULL DEFAULT false,
    created_at                    timestamptz NOT NULL DEFAULT now(),
    updated_at                    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, id),
    FOREIGN KEY (firm_id, business_calendar_id) REFERENCES business_calendars (firm_id, id)
);
CREATE INDEX sla_policies_firm_position_idx ON sla_policies (firm_id, position, created_at);
SELECT cp_fence_tenant_table('sla_policies');

GRANT SELECT, INSERT, UPDATE, DELETE ON sla_policies TO consultantpro_app;
