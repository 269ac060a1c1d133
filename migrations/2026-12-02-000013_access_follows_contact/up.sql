-- A portal login's access follows its contact: it holds only while the contact keeps
-- portal access, is not archived and still belongs to the client it belonged to when the
-- login was made. A suspended firm's sessions end too. Both are checked on every request
-- and every refresh, in the one statement that already checks the session.

ALTER TABLE memberships ADD COLUMN portal_client_id uuid;
-- Existing portal logins keep the client their contact has now.
UPDATE memberships m
   SET portal_client_id = c.client_id
  FROM contacts c
 WHERE m.contact_id IS NOT NULL AND c.firm_id = m.firm_id AND c.id = m.contact_id;

-- The member's role while the membership is active, the firm is active, and — for a
-- portal login — its contact still grants access as above; otherwise NULL. It runs with
-- the caller's rights: under RLS it sees only the firm set for the transaction (callers
-- use it inside that firm's transaction); cp_session_role, below, reaches it as its owner.
CREATE FUNCTION cp_member_role(firm uuid, member uuid)
RETURNS text
LANGUAGE sql STABLE SET search_path = public, pg_temp AS $$
    SELECT m.role
      FROM memberships m
      JOIN firms f ON f.id = m.firm_id AND f.status = 'active'
      LEFT JOIN contacts c ON c.firm_id = m.firm_id AND c.id = m.contact_id
     WHERE m.firm_id = firm
       AND m.user_id = member
       AND m.status = 'active'
       AND (m.contact_id IS NULL
            OR (c.portal_access AND c.archived_at IS NULL AND c.client_id IS NOT DISTINCT FROM m.portal_client_id))
$$;
REVOKE ALL ON FUNCTION cp_member_role(uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cp_member_role(uuid, uuid) TO consultantpro_app;

-- As before (one statement per authenticated request), now through cp_member_role.
CREATE OR REPLACE FUNCTION cp_session_role(firm uuid, member uuid, session uuid)
RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT cp_member_role(firm, member)
      FROM auth_sessions s
     WHERE s.firm_id = firm
       AND s.user_id = member
       AND s.id = session
       AND s.revoked_at IS NULL
$$;
