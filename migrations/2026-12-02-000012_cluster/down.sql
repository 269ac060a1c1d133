DROP FUNCTION cp_cluster_require_owner(text, uuid);
DROP FUNCTION cp_cluster_release(uuid, text, uuid[]);
DROP FUNCTION cp_cluster_misplaced(uuid, text);
DROP FUNCTION cp_cluster_claim(uuid, text);
DROP FUNCTION cp_cluster_live(text);
DROP FUNCTION cp_cluster_heartbeat(uuid, text, integer, text, integer);
DROP FUNCTION cp_cluster_preferred(uuid, uuid[]);
DROP TABLE firm_ownership;
DROP TABLE cluster_nodes;
