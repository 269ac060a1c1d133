-- Two-way SMS through Twilio: a firm's account, its sender numbers, who opted out, and
-- the Twilio side of each SMS message (the message itself lives in `messages`).

-- The firm's Twilio account. The auth token is sealed with the configured secrets key
-- (AES-256-GCM, bound to this firm) and never leaves the server.
CREATE TABLE sms_settings (
    firm_id            uuid NOT NULL REFERENCES firms (id),
    account_sid        text NOT NULL CHECK (account_sid ~ '^AC[0-9a-fA-F]{32}$'),
    auth_token_sealed  text NOT NULL,
    -- What Twilio calls: signatures cover the URL exactly as Twilio saw it.
    public_base_url    text NOT NULL CHECK (public_base_url ~ '^https?://' AND length(public_base_url) <= 500),
    help_text          text NOT NULL DEFAULT '' CHECK (length(help_text) <= 1600),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id)
);
SELECT cp_fence_tenant_table('sms_settings');

-- Senders: a number, a Messaging Service, or a number sending through a service.
CREATE TABLE sms_numbers (
    firm_id                uuid NOT NULL REFERENCES firms (id),
    id                     uuid NOT NULL,
    phone_number           text CHECK (phone_number ~ '^\+[1-9][0-9]{1,14}$'),
    messaging_service_sid  text CHECK (messaging_service_sid ~ '^MG[0-9a-fA-F]{32}$'),
    label                  text CHECK (length(label) <= 100),
    -- Messages per second this sender may send (Twilio: 1 for a long code, more for
    -- toll-free and short codes); outbound messages queue behind each other at this pace.
    per_second             integer NOT NULL DEFAULT 1 CHECK (per_second BETWEEN 1 AND 1000),
    -- The earliest moment the next queued message may go out.
    next_slot_at           timestamptz NOT NULL DEFAULT now(),
    created_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, id),
    CHECK (phone_number IS NOT NULL OR messaging_service_sid IS NOT NULL)
);
SELECT cp_fence_tenant_table('sms_numbers');

-- Which firm an inbound message is for, before any firm is known: the number it was sent
-- to or the Messaging Service it came through. A platform table holding addresses and
-- ids only; each address belongs to one firm.
CREATE TABLE sms_addresses (
    address         text PRIMARY KEY,
    routed_firm_id  uuid NOT NULL REFERENCES firms (id),
    sms_number_id   uuid NOT NULL
);
CREATE INDEX sms_addresses_number_idx ON sms_addresses (routed_firm_id, sms_number_id);
GRANT SELECT ON sms_addresses TO consultantpro_app;

-- Claims an address for the firm of the current transaction, never for another. False
-- when any firm (this one included) has it already.
CREATE FUNCTION cp_sms_claim_address(p_address text, p_number uuid)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    firm uuid := NULLIF(current_setting('app.current_firm_id', true), '')::uuid;
BEGIN
    IF firm IS NULL THEN
        RAISE EXCEPTION 'cp_sms_claim_address needs a firm transaction';
    END IF;
    INSERT INTO sms_addresses (address, routed_firm_id, sms_number_id) VALUES (p_address, firm, p_number)
        ON CONFLICT (address) DO NOTHING;
    RETURN FOUND;
END
$$;
REVOKE ALL ON FUNCTION cp_sms_claim_address(text, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cp_sms_claim_address(text, uuid) TO consultantpro_app;

-- Lets go of a number's addresses, for the firm of the current transaction only.
CREATE FUNCTION cp_sms_release_number(p_number uuid)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    released integer;
BEGIN
    DELETE FROM sms_addresses
     WHERE sms_number_id = p_number
       AND routed_firm_id = NULLIF(current_setting('app.current_firm_id', true), '')::uuid;
    GET DIAGNOSTICS released = ROW_COUNT;
    RETURN released;
END
$$;
REVOKE ALL ON FUNCTION cp_sms_release_number(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cp_sms_release_number(uuid) TO consultantpro_app;

-- The firms that keep a sealed Twilio token (ids only), for `consultantpro reseal-secrets`.
CREATE FUNCTION cp_firms_with_sms_settings()
RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT firm_id FROM sms_settings ORDER BY firm_id
$$;
REVOKE ALL ON FUNCTION cp_firms_with_sms_settings() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cp_firms_with_sms_settings() TO consultantpro_app;

-- Numbers that replied STOP (or a synonym): nothing is sent to them until START.
CREATE TABLE sms_opt_outs (
    firm_id       uuid NOT NULL REFERENCES firms (id),
    phone_number  text NOT NULL CHECK (phone_number ~ '^\+[1-9][0-9]{1,14}$'),
    keyword       text NOT NULL,
    opted_out_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, phone_number)
);
SELECT cp_fence_tenant_table('sms_opt_outs');

-- When each number was last answered with the help text: once a day at most.
CREATE TABLE sms_help_replies (
    firm_id       uuid NOT NULL REFERENCES firms (id),
    phone_number  text NOT NULL,
    replied_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, phone_number)
);
SELECT cp_fence_tenant_table('sms_help_replies');

-- An SMS conversation's two ends: the other party's number and the sender replies go from.
CREATE TABLE sms_threads (
    firm_id          uuid NOT NULL REFERENCES firms (id),
    conversation_id  uuid NOT NULL,
    remote_number    text NOT NULL CHECK (remote_number ~ '^\+[1-9][0-9]{1,14}$'),
    sms_number_id    uuid NOT NULL,
    PRIMARY KEY (firm_id, conversation_id),
    FOREIGN KEY (firm_id, conversation_id) REFERENCES conversations (firm_id, id) ON DELETE CASCADE,
    FOREIGN KEY (firm_id, sms_number_id) REFERENCES sms_numbers (firm_id, id) ON DELETE CASCADE
);
CREATE INDEX sms_threads_remote_idx ON sms_threads (firm_id, remote_number);
SELECT cp_fence_tenant_table('sms_threads');

-- The Twilio side of each SMS message. Status only moves forward (status_rank), so a late
-- `sent` never overwrites `delivered`.
CREATE TABLE sms_messages (
    firm_id                uuid NOT NULL REFERENCES firms (id),
    message_id             uuid NOT NULL,
    conversation_id        uuid NOT NULL,
    direction              text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    -- Twilio's MessageSid; unknown for an outbound message until Twilio accepted it.
    twilio_sid             text CHECK (twilio_sid ~ '^(SM|MM)[0-9a-fA-F]{32}$'),
    from_number            text,
    to_number              text NOT NULL,
    sms_number_id          uuid,
    messaging_service_sid  text,
    status                 text NOT NULL,
    status_rank            smallint NOT NULL,
    error_code             integer,
    error_message          text,
    segments               integer,
    media                  jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, message_id),
    FOREIGN KEY (firm_id, message_id) REFERENCES messages (firm_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX sms_messages_sid_idx ON sms_messages (firm_id, twilio_sid) WHERE twilio_sid IS NOT NULL;
SELECT cp_fence_tenant_table('sms_messages');

-- Every status callback as received, kept even when it arrives before the send that
-- learns the message's sid has recorded it; that send then applies it.
CREATE TABLE sms_status_callbacks (
    firm_id      uuid NOT NULL REFERENCES firms (id),
    id           uuid NOT NULL,
    twilio_sid   text NOT NULL,
    status       text NOT NULL,
    status_rank  smallint NOT NULL,
    error_code   integer,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, id)
);
CREATE INDEX sms_status_callbacks_sid_idx ON sms_status_callbacks (firm_id, twilio_sid);
SELECT cp_fence_tenant_table('sms_status_callbacks');

-- Contacts made from an unknown sender wait for someone to check them.
ALTER TABLE contacts ADD COLUMN needs_review boolean NOT NULL DEFAULT false;

-- An inbound MMS may carry pictures and no text: a message body may be empty (what people
-- post through the API is still checked for content).
ALTER TABLE messages DROP CONSTRAINT messages_body_check;
ALTER TABLE messages ADD CONSTRAINT messages_body_check CHECK (length(body) <= 20000);

-- A message's delivery over its channel (SMS now), folded into the message's row as JSON;
-- NULL for messages that travel only inside the hub. An invoker function: RLS applies.
CREATE FUNCTION cp_message_delivery(firm uuid, message uuid)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
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
     WHERE s.firm_id = firm AND s.message_id = message
$$;

-- Files one inbound message, once per MessageSid: the sender's contact (a new one, marked
-- for review, when the number is unknown), their open SMS conversation (or a new one),
-- the message with the conversation's next seq, and its Twilio record. One call, so the
-- webhook costs one round trip and PL/pgSQL's cached plans rather than a dozen planned
-- statements. An invoker function: RLS applies to every statement in it. Concurrent
-- deliveries of one sid queue on the advisory lock; the later ones then see the first
-- one's row (each statement reads what was committed before it began) and store nothing.
CREATE FUNCTION cp_sms_receive(
    p_firm uuid, p_sid text, p_from text, p_to text, p_service text, p_number uuid, p_body text,
    p_segments integer, p_media jsonb, p_new_contact uuid, p_new_conversation uuid, p_new_participant uuid,
    p_new_message uuid)
RETURNS TABLE (stored boolean, message_id uuid, conversation_id uuid, seq bigint, contact_id uuid,
               new_conversation boolean, created_at timestamptz, delivery jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    v_contact uuid;
    v_client uuid;
    v_name text;
    v_conversation uuid;
    v_new boolean := false;
    v_seq bigint;
    v_now timestamptz := now();
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('sms:' || p_firm::text || ':' || p_sid, 0));
    IF EXISTS (SELECT 1 FROM sms_messages s WHERE s.firm_id = p_firm AND s.twilio_sid = p_sid) THEN
        RETURN QUERY SELECT false, NULL::uuid, NULL::uuid, NULL::bigint, NULL::uuid, false, NULL::timestamptz,
                            NULL::jsonb;
        RETURN;
    END IF;

    SELECT c.id, c.client_id, btrim(c.first_name || ' ' || c.last_name) INTO v_contact, v_client, v_name
      FROM contact_phones p JOIN contacts c ON c.firm_id = p.firm_id AND c.id = p.contact_id
     WHERE p.firm_id = p_firm AND p.phone = p_from
     ORDER BY c.archived_at IS NOT NULL, p.position, c.created_at
     LIMIT 1;
    IF v_contact IS NULL THEN
        v_contact := p_new_contact;
        v_name := p_from;
        INSERT INTO contacts (firm_id, id, first_name, last_name, needs_review)
        VALUES (p_firm, v_contact, p_from, '', true);
        INSERT INTO contact_phones (firm_id, contact_id, phone, position) VALUES (p_firm, v_contact, p_from, 0);
    END IF;

    SELECT t.conversation_id INTO v_conversation
      FROM sms_threads t JOIN conversations c ON c.firm_id = t.firm_id AND c.id = t.conversation_id
     WHERE t.firm_id = p_firm AND t.remote_number = p_from AND c.status <> 'closed'
     ORDER BY c.last_message_at DESC NULLS LAST, c.created_at DESC
     LIMIT 1;
    IF v_conversation IS NULL THEN
        v_conversation := p_new_conversation;
        v_new := true;
        INSERT INTO conversations (firm_id, id, subject, channel, client_id)
        VALUES (p_firm, v_conversation,
                left(CASE WHEN v_name = p_from THEN 'SMS with ' || p_from
                          ELSE 'SMS with ' || v_name || ' (' || p_from || ')' END, 300),
                'sms', v_client);
        INSERT INTO conversation_participants (firm_id, conversation_id, id, contact_id)
        VALUES (p_firm, v_conversation, p_new_participant, v_contact);
        INSERT INTO sms_threads (firm_id, conversation_id, remote_number, sms_number_id)
        VALUES (p_firm, v_conversation, p_from, p_number);
    ELSE
        -- Replies go from the number they last wrote to.
        UPDATE sms_threads t SET sms_number_id = p_number
         WHERE t.firm_id = p_firm AND t.conversation_id = v_conversation AND t.sms_number_id <> p_number;
    END IF;

    UPDATE conversations c
       SET last_seq = c.last_seq + 1, last_message_at = v_now, updated_at = v_now, status = 'open'
     WHERE c.firm_id = p_firm AND c.id = v_conversation
    RETURNING c.last_seq INTO v_seq;
    INSERT INTO messages (firm_id, conversation_id, seq, id, author_contact_id, body, created_at)
    VALUES (p_firm, v_conversation, v_seq, p_new_message, v_contact, p_body, v_now);
    INSERT INTO sms_messages (firm_id, message_id, conversation_id, direction, twilio_sid, from_number, to_number,
                              sms_number_id, messaging_service_sid, status, status_rank, segments, media,
                              created_at, updated_at)
    VALUES (p_firm, p_new_message, v_conversation, 'inbound', p_sid, p_from, p_to, p_number, p_service,
            'received', 4, p_segments, p_media, v_now, v_now);
    RETURN QUERY SELECT true, p_new_message, v_conversation, v_seq, v_contact, v_new, v_now,
                        cp_message_delivery(p_firm, p_new_message);
END
$$;

-- The contact's numbers that opted out of SMS.
CREATE FUNCTION cp_contact_sms_opt_outs(firm uuid, contact uuid)
RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT ARRAY(SELECT o.phone_number FROM sms_opt_outs o
                   JOIN contact_phones p ON p.firm_id = o.firm_id AND p.phone = o.phone_number
                  WHERE o.firm_id = firm AND p.contact_id = contact
                  ORDER BY p.position)
$$;

GRANT SELECT, INSERT, UPDATE ON sms_settings, sms_messages TO consultantpro_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON sms_numbers, sms_opt_outs, sms_threads, sms_help_replies TO consultantpro_app;
GRANT SELECT, INSERT ON sms_status_callbacks TO consultantpro_app;
