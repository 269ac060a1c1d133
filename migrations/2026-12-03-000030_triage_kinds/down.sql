ALTER TABLE email_messages DROP CONSTRAINT email_messages_triage_check;
ALTER TABLE email_messages ADD CONSTRAINT email_messages_triage_check
    CHECK (triage IN ('automatic', 'bounce', 'loop', 'ignored', 'unreadable'));
