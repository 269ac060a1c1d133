DROP FUNCTION cp_sla_fire(uuid, timestamptz, integer, uuid);
ALTER TABLE sla_policies DROP CONSTRAINT sla_policies_notice_calendar_fkey;
ALTER TABLE sla_policies DROP COLUMN notice_calendar_id;
ALTER TABLE tickets DROP COLUMN sla_breached_at;
DELETE FROM ticket_events WHERE kind IN ('sla_warning', 'sla_breached');
ALTER TABLE ticket_events DROP CONSTRAINT ticket_events_kind_check;
ALTER TABLE ticket_events ADD CONSTRAINT ticket_events_kind_check
    CHECK (kind IN ('created', 'changed', 'customer_message', 'agent_response', 'reopened'));
DROP INDEX sla_clocks_warn_idx;
