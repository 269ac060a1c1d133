DROP FUNCTION cp_revoke_user_sessions(uuid, uuid, text);
DROP INDEX auth_sessions_open_user_idx;
DROP TABLE password_resets;
DROP TABLE invitations;
