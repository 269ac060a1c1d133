-- The firms with webhook endpoints, for sealing their signing secrets (tenant rows are
-- read per firm afterwards, under row-level security).
CREATE FUNCTION cp_firms_with_webhook_endpoints()
RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT DISTINCT firm_id FROM webhook_endpoints ORDER BY firm_id
$$;
REVOKE ALL ON FUNCTION cp_firms_with_webhook_endpoints() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cp_firms_with_webhook_endpoints() TO consultantpro_app;
