-- When a firm is open, for support SLA clocks: an IANA time zone, working windows per
-- weekday (or around the clock) and closed dates. Windows and closed dates are read whole
-- with their calendar, so they are JSON on its row, checked by the application.
CREATE TABLE business_calendars (
    firm_id      uuid NOT NULL REFERENCES firms (id),
    id           uuid NOT NULL,
    name         text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    time_zone    text NOT NULL CHECK (length(time_zone) BETWEEN 1 AND 64),
    always_open  boolean NOT NULL DEFAULT false,
    windows      jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(windows) = 'array'),
    holidays     jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(holidays) = 'array'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, id)
);
CREATE INDEX business_calendars_firm_created_idx ON business_calendars (firm_id, created_at, id);
SELECT cp_fence_tenant_table('business_calendars');

GRANT SELECT, INSERT, UPDATE, DELETE ON business_calendars TO consultantpro_app;
