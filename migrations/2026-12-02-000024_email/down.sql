CREATE OR REPLACE FUNCTION cp_message_delivery(firm uuid, message uuid)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
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
     WHERE s.firm_id = firm AND s.message_id = message
$$;
ALTER TABLE conversations DROP COLUMN reply_token;
ALTER TABLE conversations DROP COLUMN tags;
ALTER TABLE contact_emails DROP COLUMN bounce_status;
ALTER TABLE contact_emails DROP COLUMN bouncing_since;
DROP FUNCTION cp_firms_with_mailboxes();
DROP TABLE email_rules;
DROP TABLE email_auto_replies;
DROP TABLE email_parts;
DROP TABLE email_blobs;
DROP TABLE email_messages;
DROP TABLE email_settings;
DROP TABLE mailbox_folders;
DROP TABLE mailboxes;
