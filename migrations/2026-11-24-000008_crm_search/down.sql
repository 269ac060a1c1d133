DROP FUNCTION cp_search_client_ids(text);
DROP FUNCTION cp_search_contact_ids(text);
