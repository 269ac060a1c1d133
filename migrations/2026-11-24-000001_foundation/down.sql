DROP TABLE audit_events;
DROP TABLE memberships;
DROP TABLE users;
DROP TABLE firms;
DROP FUNCTION cp_reject_change();
DROP FUNCTION cp_fence_tenant_table(regclass);
