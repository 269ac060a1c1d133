-- What the firm's SLA timers need beyond the clocks: an index for the warnings still to
-- give, the events a fire writes, the first breach on the ticket, and the calendar whose
-- open hours escalation notices wait for.
CREATE INDEX sla_clocks_warn_idx ON sla_clocks (firm_id, warn_at)
    WHERE warned_at IS NULL AND running_since IS NOT NULL AND breached_at IS NULL;

ALTER TABLE ticket_events DROP CONSTRAINT ticket_events_kind_check;
ALTER TABLE ticket_events ADD CONSTRAINT ticket_events_kind_check
    CHECK (kind IN ('created', 'changed', 'customer_message', 'agent_response', 'reopened',
                    'sla_warning', 'sla_breached'));

-- The first moment any of the ticket's targets was breached.
ALTER TABLE tickets ADD COLUMN sla_breached_at timestamptz;

-- Escalation notices (the `sla.warning` and `sla.breached` webhooks) wait for this
-- calendar to be open; null sends them when the timer fires.
ALTER TABLE sla_policies ADD COLUMN notice_calendar_id uuid;
ALTER TABLE sla_policies ADD CONSTRAINT sla_policies_notice_calendar_fkey
    FOREIGN KEY (firm_id, notice_calendar_id) REFERENCES business_calendars (firm_id, id);

-- Fires what is due at `p_now` for one firm (or one ticket of it, `p_ticket`), at most
-- about `p_limit` of each kind, under the caller's row-level security: breaches first (a
-- clock that is breached needs no warning any more), then warnings. A clock is fired once:
-- the row locks and the `breached_at` / `warned_at` guards make a second call, on this
-- node or another, find nothing. The due tickets are locked first, in id order, as every
-- change of a ticket locks the ticket before its clocks, so a fire and a reply landing at
-- the same moment wait for each other instead of deadlocking. Each fire writes the
-- ticket's `sla_*` event; a breach also marks the ticket.
CREATE FUNCTION cp_sla_fire(p_firm uuid, p_now timestamptz, p_limit integer, p_ticket uuid DEFAULT NULL)
RETURNS TABLE (fired text, ticket_id uuid, metric text, due_at timestamptz, policy_id uuid,
               target_seconds bigint)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    due_tickets uuid[];
BEGIN
    SELECT array_agg(DISTINCT d.ticket_id) INTO due_tickets
      FROM (SELECT c.ticket_id FROM sla_clocks c
             WHERE c.firm_id = p_firm AND c.running_since IS NOT NULL AND c.breached_at IS NULL
               AND c.due_at <= p_now AND (p_ticket IS NULL OR c.ticket_id = p_ticket)
             ORDER BY c.due_at
             LIMIT p_limit) d;
    IF due_tickets IS NOT NULL THEN
        PERFORM 1 FROM tickets t WHERE t.firm_id = p_firm AND t.id = ANY (due_tickets) ORDER BY t.id FOR UPDATE;
        FOR r IN
            UPDATE sla_clocks c
               SET breached_at = c.due_at,
                   state = CASE WHEN c.state = 'running' THEN 'breached' ELSE c.state END,
                   warned_at = COALESCE(c.warned_at, p_now),
                   updated_at = p_now
             WHERE c.firm_id = p_firm AND c.ticket_id = ANY (due_tickets)
               AND c.running_since IS NOT NULL AND c.breached_at IS NULL AND c.due_at <= p_now
         RETURNING c.ticket_id, c.metric, c.due_at, c.policy_id, c.target_seconds
        LOOP
            INSERT INTO ticket_events (firm_id, ticket_id, id, kind, actor_type, detail, at)
            VALUES (p_firm, r.ticket_id, gen_random_uuid(), 'sla_breached', 'system',
                    jsonb_build_object('metric', r.metric, 'due_at', r.due_at, 'policy_id', r.policy_id,
                                       'target_seconds', r.target_seconds),
                    p_now);
            UPDATE tickets t SET sla_breached_at = COALESCE(t.sla_breached_at, r.due_at), updated_at = p_now
             WHERE t.firm_id = p_firm AND t.id = r.ticket_id;
            fired := 'breached'; ticket_id := r.ticket_id; metric := r.metric; due_at := r.due_at;
            policy_id := r.policy_id; target_seconds := r.target_seconds;
            RETURN NEXT;
        END LOOP;
    END IF;

    SELECT array_agg(DISTINCT d.ticket_id) INTO due_tickets
      FROM (SELECT c.ticket_id FROM sla_clocks c
             WHERE c.firm_id = p_firm AND c.warned_at IS NULL AND c.running_since IS NOT NULL
               AND c.breached_at IS NULL AND c.warn_at <= p_now AND (p_ticket IS NULL OR c.ticket_id = p_ticket)
             ORDER BY c.warn_at
             LIMIT p_limit) d;
    IF due_tickets IS NOT NULL THEN
        PERFORM 1 FROM tickets t WHERE t.firm_id = p_firm AND t.id = ANY (due_tickets) ORDER BY t.id FOR UPDATE;
        FOR r IN
            UPDATE sla_clocks c
               SET warned_at = p_now, updated_at = p_now
             WHERE c.firm_id = p_firm AND c.ticket_id = ANY (due_tickets)
               AND c.warned_at IS NULL AND c.running_since IS NOT NULL AND c.breached_at IS NULL
               AND c.warn_at <= p_now
         RETURNING c.ticket_id, c.metric, c.due_at, c.warn_at, c.policy_id, c.target_seconds
        LOOP
            INSERT INTO ticket_events (firm_id, ticket_id, id, kind, actor_type, detail, at)
            VALUES (p_firm, r.ticket_id, gen_random_uuid(), 'sla_warning', 'system',
                    jsonb_build_object('metric', r.metric, 'due_at', r.due_at, 'warn_at', r.warn_at,
                                       'policy_id', r.policy_id, 'target_seconds', r.target_seconds),
                    p_now);
            fired := 'warning'; ticket_id := r.ticket_id; metric := r.metric; due_at := r.due_at;
            policy_id := r.policy_id; target_seconds := r.target_seconds;
            RETURN NEXT;
        END LOOP;
    END IF;
END;
$$;
REVOKE ALL ON FUNCTION cp_sla_fire(uuid, timestamptz, integer, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cp_sla_fire(uuid, timestamptz, integer, uuid) TO consultantpro_app;
