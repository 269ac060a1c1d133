DROP TABLE realtime_tickets;
DROP FUNCTION cp_conversation_contacts(uuid, uuid);
DROP FUNCTION cp_conversation_members(uuid, uuid);
DROP TABLE conversation_reads;
DROP TABLE messages;
DROP TABLE conversation_participants;
DROP TABLE conversations;
DROP INDEX memberships_contact_idx;
ALTER TABLE memberships DROP CONSTRAINT memberships_contact_fkey;
ALTER TABLE memberships DROP CONSTRAINT memberships_client_contact_check;
ALTER TABLE memberships DROP CONSTRAINT memberships_role_check;
ALTER TABLE memberships ADD CONSTRAINT memberships_role_check
    CHECK (role IN ('owner', 'admin', 'staff', 'billing', 'readonly'));
ALTER TABLE memberships DROP COLUMN contact_id;
