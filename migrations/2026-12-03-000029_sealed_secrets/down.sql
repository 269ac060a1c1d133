DROP FUNCTION cp_firms_with_webhook_endpoints();
