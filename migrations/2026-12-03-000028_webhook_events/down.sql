DROP TRIGGER messages_created_webhooks ON messages;
DROP FUNCTION cp_messages_created();
DROP FUNCTION cp_emit_webhook(uuid, text, jsonb, integer, timestamptz, uuid);
DROP FUNCTION cp_uuid_v7();
