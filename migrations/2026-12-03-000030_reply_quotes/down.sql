ALTER TABLE email_messages DROP COLUMN answers_email_id;
