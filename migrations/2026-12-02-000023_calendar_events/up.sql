-- Members' own calendar events, one-off or recurring (an RRULE read in the event's zone, with
-- exceptions), and their busy occurrences in `calendar_busy`, so bookings keep clear of them.
CREATE TABLE calendar_events (
    firm_id      uuid NOT NULL REFERENCES firms (id),
    id           uuid NOT NULL,
    user_id      uuid NOT NULL REFERENCES users (id),
    title        text NOT NULL CHECK (length(btrim(title)) BETWEEN 1 AND 200),
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz NOT NULL CHECK (ends_at > starts_at),
    time_zone    text NOT NULL,
    rrule        text CHECK (length(rrule) BETWEEN 1 AND 500),
    exdates      timestamptz[] NOT NULL DEFAULT '{}' CHECK (cardinality(exdates) <= 500),
    busy         boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, id)
);
CREATE INDEX calendar_events_user_idx ON calendar_events (firm_id, user_id, starts_at);
SELECT cp_fence_tenant_table('calendar_events');

ALTER TABLE calendar_busy ADD COLUMN event_id uuid;
ALTER TABLE calendar_busy ADD CONSTRAINT calendar_busy_event_fkey
    FOREIGN KEY (firm_id, event_id) REFERENCES calendar_events (firm_id, id) ON DELETE CASCADE;

-- A member's private calendar feed: the secret's hash; the feed URL carries the firm and
-- the secret.
CREATE TABLE calendar_feeds (
    firm_id      uuid NOT NULL REFERENCES firms (id),
    user_id      uuid NOT NULL REFERENCES users (id),
    secret_hash  text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, user_id)
);
CREATE UNIQUE INDEX calendar_feeds_secret_idx ON calendar_feeds (firm_id, secret_hash);
SELECT cp_fence_tenant_table('calendar_feeds');

GRANT SELECT, INSERT, UPDATE, DELETE ON calendar_events, calendar_feeds TO consultantpro_app;
