DROP INDEX audit_events_target_idx;
DROP TABLE client_notes;
