-- Bookings: members' bookable hours, booking links, the bookings made through them, and
-- the busy time that keeps a member from being booked twice.
CREATE EXTENSION IF NOT EXISTS btree_gist;

-- A member's bookable hours: an IANA zone, windows per weekday (local wall-clock times),
-- and dates whose hours differ (an empty list: not available that day).
CREATE TABLE availability_schedules (
    firm_id     uuid NOT NULL REFERENCES firms (id),
    user_id     uuid NOT NULL REFERENCES users (id),
    time_zone   text NOT NULL CHECK (length(time_zone) BETWEEN 1 AND 64),
    windows     jsonb NOT NULL CHECK (jsonb_typeof(windows) = 'array'),
    overrides   jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(overrides) = 'array'),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, user_id)
);
SELECT cp_fence_tenant_table('availability_schedules');

-- A public booking page. Its slug is unique across firms: the public URL names no firm.
CREATE TABLE booking_links (
    firm_id                 uuid NOT NULL REFERENCES firms (id),
    id                      uuid NOT NULL,
    slug                    text NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9-]{2,62}$'),
    title                   text NOT NULL CHECK (length(btrim(title)) BETWEEN 1 AND 200),
    member_ids              uuid[] NOT NULL CHECK (cardinality(member_ids) BETWEEN 1 AND 20),
    assignment              text NOT NULL CHECK (assignment IN ('single', 'round_robin')),
    duration_minutes        integer NOT NULL CHECK (duration_minutes BETWEEN 5 AND 720),
    buffer_before_minutes   integer NOT NULL DEFAULT 0 CHECK (buffer_before_minutes BETWEEN 0 AND 240),
    buffer_after_minutes    integer NOT NULL DEFAULT 0 CHECK (buffer_after_minutes BETWEEN 0 AND 240),
    min_notice_minutes      integer NOT NULL DEFAULT 0 CHECK (min_notice_minutes BETWEEN 0 AND 525600),
    window_days             integer NOT NULL DEFAULT 60 CHECK (window_days BETWEEN 1 AND 365),
    slot_interval_minutes   integer NOT NULL CHECK (slot_interval_minutes BETWEEN 5 AND 720),
    questions               jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(questions) = 'array'),
    requires_confirmation   boolean NOT NULL DEFAULT false,
    active                  boolean NOT NULL DEFAULT true,
    created_by              uuid REFERENCES users (id),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, id)
);
CREATE UNIQUE INDEX booking_links_slug_idx ON booking_links (slug);
SELECT cp_fence_tenant_table('booking_links');

-- The firm behind an active link's slug, for the public pages (which know no firm yet):
-- the firm id only, never the link's contents.
CREATE FUNCTION cp_booking_link_firm(p_slug text) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT l.firm_id FROM booking_links l
      JOIN firms f ON f.id = l.firm_id AND f.status = 'active'
     WHERE l.slug = p_slug AND l.active
$$;
REVOKE ALL ON FUNCTION cp_booking_link_firm(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cp_booking_link_firm(text) TO consultantpro_app;

CREATE TABLE bookings (
    firm_id             uuid NOT NULL REFERENCES firms (id),
    id                  uuid NOT NULL,
    link_id             uuid NOT NULL,
    member_user_id      uuid NOT NULL REFERENCES users (id),
    starts_at           timestamptz NOT NULL,
    ends_at             timestamptz NOT NULL CHECK (ends_at > starts_at),
    status              text NOT NULL CHECK (status IN ('pending', 'confirmed', 'cancelled')),
    invitee_name        text NOT NULL CHECK (length(btrim(invitee_name)) BETWEEN 1 AND 200),
    invitee_email       text NOT NULL CHECK (length(invitee_email) BETWEEN 3 AND 254),
    invitee_time_zone   text NOT NULL,
    answers             jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(answers) = 'object'),
    ical_uid            text NOT NULL,
    ical_sequence       integer NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    cancelled_at        timestamptz,
    PRIMARY KEY (firm_id, id),
    FOREIGN KEY (firm_id, link_id) REFERENCES booking_links (firm_id, id)
);
CREATE INDEX bookings_member_idx ON bookings (firm_id, member_user_id, starts_at);
CREATE INDEX bookings_starts_idx ON bookings (firm_id, starts_at, id);
SELECT cp_fence_tenant_table('bookings');

-- Busy time per member: an active booking with its buffers, or a busy event. The final word
-- on double booking: no two bookings of a member overlap, and no booking overlaps a busy
-- event (events may overlap each other: a member's own calendar is theirs to crowd).
CREATE TABLE calendar_busy (
    firm_id      uuid NOT NULL REFERENCES firms (id),
    id           uuid NOT NULL,
    user_id      uuid NOT NULL REFERENCES users (id),
    during       tstzrange NOT NULL CHECK (NOT isempty(during)),
    kind         text NOT NULL CHECK (kind IN ('booking', 'event')),
    booking_id   uuid,
    PRIMARY KEY (firm_id, id),
    FOREIGN KEY (firm_id, booking_id) REFERENCES bookings (firm_id, id) ON DELETE CASCADE,
    CONSTRAINT calendar_busy_no_double_booking
        EXCLUDE USING gist (firm_id WITH =, user_id WITH =, during WITH &&) WHERE (kind = 'booking'),
    CONSTRAINT calendar_busy_no_booking_over_event
        EXCLUDE USING gist (firm_id WITH =, user_id WITH =, during WITH &&, kind WITH <>)
);
SELECT cp_fence_tenant_table('calendar_busy');

GRANT SELECT, INSERT, UPDATE, DELETE ON availability_schedules, booking_links, bookings, calendar_busy
    TO consultantpro_app;
