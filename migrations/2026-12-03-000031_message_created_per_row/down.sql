-- As migration 000028 left it.
DROP TRIGGER messages_created_webhooks ON messages;
DROP FUNCTION cp_message_created();

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
