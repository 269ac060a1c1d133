-- The inbound email an outbound reply answers, chosen once when the reply is queued (the
-- same row its recipients come from), so the history it quotes is that email's and no
-- other, whatever arrives before it is sent.
ALTER TABLE email_messages ADD COLUMN answers_email_id uuid;
