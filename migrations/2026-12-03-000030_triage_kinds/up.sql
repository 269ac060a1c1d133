-- Triage writes four kinds (`domain::email::TRIAGE_KINDS`); `unreadable` was allowed here
-- but never written (an email the parser cannot read is kept as text, not triaged), so the
-- column's set and the API's are made the same.
ALTER TABLE email_messages DROP CONSTRAINT email_messages_triage_check;
ALTER TABLE email_messages ADD CONSTRAINT email_messages_triage_check
    CHECK (triage IN ('automatic', 'bounce', 'loop', 'ignored'));
