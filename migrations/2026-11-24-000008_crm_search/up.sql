-- Substring search that can use the trigram indexes, and the list helpers that keep a
-- contact page to one prepared (cached) statement.
--
-- Under row-level security the planner applies the tenant policy before any operator that
-- is not LEAKPROOF, and LIKE is not, so an ordinary `name_key LIKE '%x%'` filters the
-- firm's rows one by one instead of using the trigram index. The search functions run as
-- the owner (no RLS) but take the firm from the transaction's `app.current_firm_id` — the
-- very setting the policies read — so they see only the firm the caller is already scoped
-- to, and with no firm set they return nothing. They return ids only (for
-- `id IN (SELECT f(pattern))`); callers read the rows under RLS as usual.

CREATE FUNCTION cp_search_contact_ids(pattern text)
RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT c.id
      FROM contacts c
     WHERE c.firm_id = NULLIF(current_setting('app.current_firm_id', true), '')::uuid
       AND c.name_key LIKE pattern
    UNION
    SELECT e.contact_id
      FROM contact_emails e
     WHERE e.firm_id = NULLIF(current_setting('app.current_firm_id', true), '')::uuid
       AND e.email LIKE pattern
$$;
REVOKE ALL ON FUNCTION cp_search_contact_ids(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cp_search_contact_ids(text) TO consultantpro_app;

CREATE FUNCTION cp_search_client_ids(pattern text)
RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT c.id
      FROM clients c
     WHERE c.firm_id = NULLIF(current_setting('app.current_firm_id', true), '')::uuid
       AND c.name_key LIKE pattern
$$;
REVOKE ALL ON FUNCTION cp_search_client_ids(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cp_search_client_ids(text) TO consultantpro_app;

-- A contact's addresses and numbers in order, as arrays on the contact's row. Ordinary
-- (invoker) functions: row-level security applies inside them as everywhere else.
CREATE FUNCTION cp_contact_emails(firm uuid, contact uuid)
RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT ARRAY(SELECT e.email FROM contact_emails e
                  WHERE e.firm_id = firm AND e.contact_id = contact ORDER BY e.position)
$$;

CREATE FUNCTION cp_contact_phones(firm uuid, contact uuid)
RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT ARRAY(SELECT p.phone FROM contact_phones p
                  WHERE p.firm_id = firm AND p.contact_id = contact ORDER BY p.position)
$$;
