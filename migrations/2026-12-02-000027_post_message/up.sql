-- A member's or portal user's message in one round trip: the conversation locked (and the
-- viewer's right to it checked in the same statement), a resend of a client_msg_id found,
-- the next seq taken, the message and the author's read receipt stored, and whether an
-- open ticket follows the conversation (only then does the caller do the ticket's work).
-- An invoker function: RLS applies to every statement in it. Outcomes: 'new',
-- 'duplicate' (the first copy is returned), 'sms_portal' (a portal user may not answer an
-- SMS conversation: nothing is stored); no row when the conversation is not the viewer's.
CREATE FUNCTION cp_post_message(
    p_firm uuid, p_conversation uuid, p_author uuid, p_portal_contact uuid,
    p_id uuid, p_body text, p_client_msg_id text, p_now timestamptz)
RETURNS TABLE (outcome text, channel text, open_ticket boolean, id uuid, conversation_id uuid,
               seq bigint, author_user_id uuid, author_contact_id uuid, body text,
               client_msg_id text, created_at timestamptz, delivery jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_channel text;
    v_seq bigint;
BEGIN
    -- Senders queue on this lock until the holder commits; the resend check below then
    -- sees a concurrent first copy, so two copies of one client_msg_id never both get a seq.
    SELECT c.channel INTO v_channel
      FROM conversations c
     WHERE c.firm_id = p_firm AND c.id = p_conversation
       AND (p_portal_contact IS NULL
            OR EXISTS (SELECT 1 FROM conversation_participants cp
                        WHERE cp.firm_id = p_firm AND cp.conversation_id = c.id
                          AND cp.contact_id = p_portal_contact))
       FOR UPDATE OF c;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF v_channel = 'sms' AND p_portal_contact IS NOT NULL THEN
        RETURN QUERY SELECT 'sms_portal'::text, v_channel, false, NULL::uuid, NULL::uuid, NULL::bigint,
                            NULL::uuid, NULL::uuid, NULL::text, NULL::text, NULL::timestamptz, NULL::jsonb;
        RETURN;
    END IF;
    IF p_client_msg_id IS NOT NULL THEN
        RETURN QUERY SELECT 'duplicate'::text, v_channel, false, m.id, m.conversation_id, m.seq,
                            m.author_user_id, m.author_contact_id, m.body, m.client_msg_id, m.created_at,
                            cp_message_delivery(m.firm_id, m.id)
                       FROM messages m
                      WHERE m.firm_id = p_firm AND m.conversation_id = p_conversation
                        AND m.author_user_id = p_author AND m.client_msg_id = p_client_msg_id;
        IF FOUND THEN
            RETURN;
        END IF;
    END IF;
    UPDATE conversations c SET last_seq = c.last_seq + 1, last_message_at = p_now, updated_at = p_now
     WHERE c.firm_id = p_firm AND c.id = p_conversation
    RETURNING c.last_seq INTO v_seq;
    INSERT INTO messages (firm_id, conversation_id, seq, id, author_user_id, author_contact_id,
                          body, client_msg_id, created_at)
    VALUES (p_firm, p_conversation, v_seq, p_id, p_author, p_portal_contact, p_body, p_client_msg_id, p_now);
    INSERT INTO conversation_reads AS r (firm_id, conversation_id, user_id, last_read_seq)
    VALUES (p_firm, p_conversation, p_author, v_seq)
    ON CONFLICT (firm_id, conversation_id, user_id) DO UPDATE
       SET last_read_seq = GREATEST(r.last_read_seq, excluded.last_read_seq),
           read_at = excluded.read_at;
    RETURN QUERY SELECT 'new'::text, v_channel,
                        EXISTS (SELECT 1 FROM tickets t
                                 WHERE t.firm_id = p_firm AND t.conversation_id = p_conversation
                                   AND t.status <> 'closed'),
                        p_id, p_conversation, v_seq, p_author, p_portal_contact, p_body, p_client_msg_id,
                        p_now, NULL::jsonb;
END
$$;
REVOKE ALL ON FUNCTION cp_post_message(uuid, uuid, uuid, uuid, uuid, text, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cp_post_message(uuid, uuid, uuid, uuid, uuid, text, text, timestamptz) TO consultantpro_app;
