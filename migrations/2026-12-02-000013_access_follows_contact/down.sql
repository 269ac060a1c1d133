CREATE OR REPLACE FUNCTION cp_session_role(firm uuid, member uuid, session uuid)
RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT m.role
      FROM memberships m
      JOIN auth_sessions s ON s.firm_id = m.firm_id AND s.user_id = m.user_id
     WHERE m.firm_id = firm
       AND m.user_id = member
       AND m.status = 'active'
       AND s.id = session
       AND s.revoked_at IS NULL
$$;
DROP FUNCTION cp_member_role(uuid, uuid);
ALTER TABLE memberships DROP COLUMN portal_client_id;
