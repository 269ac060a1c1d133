DROP FUNCTION cp_session_role(uuid, uuid, uuid);
