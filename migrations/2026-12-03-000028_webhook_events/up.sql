-- Time-ordered ids made in SQL, laid out like the server's Uuid::now_v7 (48-bit Unix
-- milliseconds, version 7, RFC 4122 variant), so rows queued by the database sort with
-- rows queued by the server.
CREATE FUNCTION cp_uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE AS $$
    SELECT encode(
        set_bit(set_bit(set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1), 54, 1), 55, 0),
        'hex')::uuid
$$;

-- One event to every active endpoint of the firm subscribed to it (by name or `*`), or to
-- the one endpoint named (a ping, whatever it subscribes to): a delivery row each, and the
-- job that sends it, in one statement. The only place a delivery's payload is shaped.
CREATE FUNCTION cp_emit_webhook(p_firm uuid, p_type text, p_data jsonb, p_max_attempts integer,
                                p_send_at timestamptz, p_only_endpoint uuid)
RETURNS SETOF uuid
LANGUAGE sql VOLATILE AS $$
    WITH targets AS (
        SELECT e.id AS endpoint_id, cp_uuid_v7() AS delivery_id
          FROM webhook_endpoints e
         WHERE e.firm_id = p_firm AND e.deleted_at IS NULL
           AND CASE WHEN p_only_endpoint IS NULL
                    THEN e.active AND e.event_types && ARRAY[p_type, '*']
                    ELSE e.id = p_only_endpoint END
    ), deliveries AS (
        INSERT INTO webhook_deliveries (firm_id, id, endpoint_id, event_type, payload)
        SELECT p_firm, t.delivery_id, t.endpoint_id, p_type,
               jsonb_build_object('id', t.delivery_id, 'type', p_type, 'created_at', now(),
                                  'firm_id', p_firm, 'data', p_data)
          FROM targets t
        RETURNING id
    ), queued AS (
        INSERT INTO jobs (firm_id, id, kind, payload, max_attempts, run_at)
        SELECT p_firm, cp_uuid_v7(), 'webhook.deliver', jsonb_build_object('delivery_id', d.id),
               least(greatest(p_max_attempts, 1), 100), p_send_at
          FROM deliveries d
        RETURNING payload
    )
    SELECT (q.payload ->> 'delivery_id')::uuid FROM queued q
$$;

-- `message.created` for every stored message, whichever path stored it (a member's post,
-- an inbound email or SMS, the hub's own answer), in the statement that stored it. The
-- attempts come from the server's jobs.max_attempts, set on each of its connections.
CREATE FUNCTION cp_messages_created() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT i.firm_id, i.id, i.conversation_id, i.seq, i.author_user_id, i.author_contact_id,
               i.created_at, c.channel
          FROM inserted i
          JOIN conversations c ON c.firm_id = i.firm_id AND c.id = i.conversation_id
         WHERE EXISTS (SELECT 1 FROM webhook_endpoints e
                        WHERE e.firm_id = i.firm_id AND e.active AND e.deleted_at IS NULL
                          AND e.event_types && ARRAY['message.created', '*'])
    LOOP
        PERFORM cp_emit_webhook(
            r.firm_id, 'message.created',
            jsonb_build_object('message_id', r.id, 'conversation_id', r.conversation_id, 'seq', r.seq,
                               'channel', r.channel, 'author_user_id', r.author_user_id,
                               'author_contact_id', r.author_contact_id, 'created_at', r.created_at),
            coalesce(nullif(current_setting('app.job_max_attempts', true), '')::integer, 8),
            now(), NULL);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER messages_created_webhooks
    AFTER INSERT ON messages
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION cp_messages_created();

GRANT EXECUTE ON FUNCTION cp_uuid_v7() TO consultantpro_app;
REVOKE ALL ON FUNCTION cp_emit_webhook(uuid, text, jsonb, integer, timestamptz, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cp_emit_webhook(uuid, text, jsonb, integer, timestamptz, uuid) TO consultantpro_app;
