-- The check every authenticated request makes: the member's role, if the membership is
-- active and the token's session has not been revoked. As one statement it costs one
-- round trip instead of a firm-scoped transaction (three). It bypasses RLS to do so, and
-- answers only a caller that already holds the session's id (a random UUID from a signed
-- token), with a role name and nothing else.
CREATE FUNCTION cp_session_role(firm uuid, member uuid, session uuid)
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
REVOKE ALL ON FUNCTION cp_session_role(uuid, uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cp_session_role(uuid, uuid, uuid) TO consultantpro_app;
