-- SQL functions that cannot be inlined are planned again on every call: the session check
-- on every authenticated request was half of the database's work for a page of contacts,
-- and the per-row functions of conversation and message lists planned once per row.
-- PL/pgSQL keeps each statement's plan for the life of the connection. The session check's
-- body is now one statement, with the membership check inlined.
CREATE OR REPLACE FUNCTION cp_member_role(firm uuid, member uuid)
RETURNS text
LANGUAGE plpgsql STABLE SET search_path = public, pg_temp AS $$
BEGIN
    RETURN (SELECT m.role
              FROM memberships m
              JOIN firms f ON f.id = m.firm_id AND f.status = 'active'
              LEFT JOIN contacts c ON c.firm_id = m.firm_id AND c.id = m.contact_id
             WHERE m.firm_id = firm
               AND m.user_id = member
               AND m.status = 'active'
               AND (m.contact_id IS NULL
                    OR (c.portal_access AND c.archived_at IS NULL
                        AND c.client_id IS NOT DISTINCT FROM m.portal_client_id)));
END
$$;

CREATE OR REPLACE FUNCTION cp_session_role(firm uuid, member uuid, session uuid)
RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    RETURN (SELECT m.role
              FROM auth_sessions s
              JOIN memberships m ON m.firm_id = s.firm_id AND m.user_id = s.user_id
              JOIN firms f ON f.id = m.firm_id AND f.status = 'active'
              LEFT JOIN contacts c ON c.firm_id = m.firm_id AND c.id = m.contact_id
             WHERE s.firm_id = firm
               AND s.user_id = member
               AND s.id = session
               AND s.revoked_at IS NULL
               AND m.status = 'active'
               AND (m.contact_id IS NULL
                    OR (c.portal_access AND c.archived_at IS NULL
                        AND c.client_id IS NOT DISTINCT FROM m.portal_client_id)));
END
$$;

CREATE OR REPLACE FUNCTION cp_conversation_members(firm uuid, conversation uuid)
RETURNS uuid[]
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN ARRAY(SELECT p.user_id FROM conversation_participants p
                  WHERE p.firm_id = firm AND p.conversation_id = conversation AND p.user_id IS NOT NULL
                  ORDER BY p.added_at, p.id);
END
$$;

CREATE OR REPLACE FUNCTION cp_conversation_contacts(firm uuid, conversation uuid)
RETURNS uuid[]
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN ARRAY(SELECT p.contact_id FROM conversation_participants p
                  WHERE p.firm_id = firm AND p.conversation_id = conversation AND p.contact_id IS NOT NULL
                  ORDER BY p.added_at, p.id);
END
$$;

CREATE OR REPLACE FUNCTION cp_message_delivery(firm uuid, message uuid)
RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN COALESCE(
        (SELECT jsonb_build_object(
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
          WHERE s.firm_id = firm AND s.message_id = message),
        (SELECT jsonb_build_object(
                    'channel', 'email',
                    'direction', e.direction,
                    'status', e.status,
                    'error_message', e.error_message,
                    'attempts', e.attempts,
                    'email_id', e.id,
                    'from', e.from_address,
                    'to', to_jsonb(e.to_addresses),
                    'cc', to_jsonb(e.cc_addresses),
                    'subject', e.subject,
                    'attachments', (SELECT count(*) FROM email_parts p
                                     WHERE p.firm_id = e.firm_id AND p.email_id = e.id AND p.disposition = 'attachment'),
                    'updated_at', e.updated_at)
           FROM email_messages e
          WHERE e.firm_id = firm AND e.chat_message_id = message));
END
$$;
