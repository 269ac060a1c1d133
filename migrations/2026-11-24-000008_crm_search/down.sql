DROP FUNCTION cp_contact_phones(uuid, uuid);
DROP FUNCTION cp_contact_emails(uuid, uuid);
DROP FUNCTION cp_search_client_ids(text);
DROP FUNCTION cp_search_contact_ids(text);
