-- Durable jobs (every outbound side effect goes through them) and outbound webhooks.

-- Tenant table: one unit of work. Claimed with FOR UPDATE SKIP LOCKED under a lease; a job
-- whose lease ran out (its worker died) is claimed again.
CREATE TABLE jobs (
    firm_id           uuid NOT NULL REFERENCES firms (id),
    id                uuid NOT NULL,
    kind              text NOT NULL CHECK (length(kind) BETWEEN 1 AND 100),
    payload           jsonb NOT NULL,
    state             text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'succeeded', 'dead')),
    run_at            timestamptz NOT NULL DEFAULT now(),
    attempts          integer NOT NULL DEFAULT 0,
    max_attempts      integer NOT NULL CHECK (max_attempts BETWEEN 1 AND 100),
    last_error        text,
    lease_owner       text,
    lease_expires_at  timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    PRIMARY KEY (firm_id, id)
);
-- What the claim query scans: due queued jobs, and running jobs by lease expiry.
CREATE INDEX jobs_due_idx ON jobs (run_at) WHERE state = 'queued';
CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX jobs_firm_state_idx ON jobs (firm_id, state, updated_at DESC);
SELECT cp_fence_tenant_table('jobs');

-- Claims up to `batch` due jobs across all firms (or only `only_firm`'s, for a worker
-- dedicated to one firm) for `worker`, leasing them for `lease_seconds`. Returns ids only;
-- the worker reads each job inside its firm's transaction. Owned by the owner role
-- (BYPASSRLS) because it must see every firm.
CREATE FUNCTION cp_claim_jobs(worker text, lease_seconds integer, batch integer, only_firm uuid)
RETURNS TABLE (firm_id uuid, id uuid)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH due AS (
        SELECT j.firm_id, j.id
          FROM jobs j
         WHERE ((j.state = 'queued' AND j.run_at <= now())
            OR (j.state = 'running' AND j.lease_expires_at < now()))
           AND (only_firm IS NULL OR j.firm_id = only_firm)
         ORDER BY j.run_at
         LIMIT batch
           FOR UPDATE SKIP LOCKED
    )
    UPDATE jobs j
       SET state = 'running',
           lease_owner = worker,
           lease_expires_at = now() + make_interval(secs => lease_seconds),
           attempts = j.attempts + 1,
           updated_at = now()
      FROM due
     WHERE j.firm_id = due.firm_id AND j.id = due.id
 RETURNING j.firm_id, j.id
$$;
REVOKE ALL ON FUNCTION cp_claim_jobs(text, integer, integer, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cp_claim_jobs(text, integer, integer, uuid) TO consultantpro_app;

-- Job counts by state across firms, for metrics: numbers only.
CREATE FUNCTION cp_job_counts()
RETURNS TABLE (state text, jobs bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT j.state, count(*) FROM jobs j GROUP BY j.state
$$;
REVOKE ALL ON FUNCTION cp_job_counts() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cp_job_counts() TO consultantpro_app;

-- Tenant table: where a firm wants its events POSTed. The secret signs deliveries, so it
-- is kept (not hashed); it is shown to the firm once, at creation or rotation.
CREATE TABLE webhook_endpoints (
    firm_id          uuid NOT NULL REFERENCES firms (id),
    id               uuid NOT NULL,
    url              text NOT NULL CHECK (length(url) BETWEEN 8 AND 2048),
    description      text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    event_types      text[] NOT NULL,
    active           boolean NOT NULL DEFAULT true,
    secret           text NOT NULL,
    failure_streak   integer NOT NULL DEFAULT 0,
    disabled_reason  text,
    deleted_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, id)
);
SELECT cp_fence_tenant_table('webhook_endpoints');

-- Tenant table: one event for one endpoint. Its id is the X-CP-Delivery-Id, the same on
-- every attempt, so receivers can drop duplicates.
CREATE TABLE webhook_deliveries (
    firm_id           uuid NOT NULL REFERENCES firms (id),
    id                uuid NOT NULL,
    endpoint_id       uuid NOT NULL,
    event_type        text NOT NULL,
    payload           jsonb NOT NULL,
    state             text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'succeeded', 'failed')),
    attempts          integer NOT NULL DEFAULT 0,
    last_status_code  integer,
    last_latency_ms   integer,
    last_error        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    last_attempt_at   timestamptz,
    delivered_at      timestamptz,
    PRIMARY KEY (firm_id, id),
    FOREIGN KEY (firm_id, endpoint_id) REFERENCES webhook_endpoints (firm_id, id)
);
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (firm_id, endpoint_id, created_at DESC, id DESC);
SELECT cp_fence_tenant_table('webhook_deliveries');

GRANT SELECT, INSERT, UPDATE ON jobs, webhook_endpoints, webhook_deliveries TO consultantpro_app;
