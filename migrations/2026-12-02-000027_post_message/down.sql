DROP FUNCTION cp_post_message(uuid, uuid, uuid, uuid, uuid, text, text, timestamptz);
