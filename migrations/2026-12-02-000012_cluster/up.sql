-- Which node runs each firm's once-only work (mailbox watchers, SMS pacing, SLA timers).
--
-- Ownership is a lease per node, not per firm: each node renews one row every heartbeat,
-- and a firm's ownership row points at a node. A firm's owner is valid while that node's
-- lease is; so 100,000 firms cost one write per node per heartbeat, and a row changes only
-- when a firm changes hands. (Session advisory locks, one per firm, would need 100,000
-- entries in the shared lock table, which holds max_locks_per_transaction x
-- (max_connections + max_prepared_transactions) = 6,400 at PostgreSQL's defaults.)
--
-- Every `fencing_token` is one higher than the last for that firm, so a write guarded by
-- it can never come from a node that has since lost the firm.
--
-- Both are platform tables: ids, node names and child states (kinds, keys, error
-- summaries), never tenant content.

CREATE TABLE cluster_nodes (
    id            uuid PRIMARY KEY,
    -- Nodes that share a database and a cluster name share the firms; production runs one
    -- name, tests give each test server its own so parallel tests stay apart.
    cluster       text NOT NULL CHECK (length(cluster) BETWEEN 1 AND 100),
    hostname      text NOT NULL,
    pid           integer NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    lease_until   timestamptz NOT NULL,
    -- Shutting down: no longer given firms, still holding what it has until it lets go.
    stopping      boolean NOT NULL DEFAULT false,
    -- The node's owned children and their states, as of `children_at`.
    children      jsonb NOT NULL DEFAULT '[]'::jsonb,
    children_at   timestamptz
);
CREATE INDEX cluster_nodes_cluster_idx ON cluster_nodes (cluster, lease_until);

CREATE TABLE firm_ownership (
    cluster        text NOT NULL,
    owned_firm_id  uuid NOT NULL REFERENCES firms (id) ON DELETE CASCADE,
    node_id        uuid REFERENCES cluster_nodes (id) ON DELETE SET NULL,
    fencing_token  bigint NOT NULL DEFAULT 0,
    claimed_at     timestamptz,
    -- When the firm first needed an owner (it configured a mailbox, ...).
    required_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster, owned_firm_id)
);
CREATE INDEX firm_ownership_node_idx ON firm_ownership (cluster, node_id);

-- The node a firm belongs on, by rendezvous hashing: each (firm, node) pair gets a score
-- and the highest wins. Firms spread evenly, and when a node comes or goes only the firms
-- it wins or held move.
CREATE FUNCTION cp_cluster_preferred(firm uuid, nodes uuid[]) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT n FROM unnest(nodes) AS n
     ORDER BY hashtextextended(firm::text || n::text, 0) DESC, n
     LIMIT 1
$$;

-- Renews the node's lease (registering it on first call) and returns the cluster's live
-- nodes. NULL when the node's lease had already lapsed: other nodes may have taken its
-- firms, so it must stop their work and start over under a new id.
CREATE FUNCTION cp_cluster_heartbeat(p_node uuid, p_cluster text, p_lease_ms integer, p_hostname text, p_pid integer)
RETURNS uuid[] LANGUAGE plpgsql AS $$
DECLARE
    live uuid[];
BEGIN
    UPDATE cluster_nodes
       SET heartbeat_at = now(), lease_until = now() + p_lease_ms * interval '1 millisecond'
     WHERE id = p_node AND lease_until > now();
    IF NOT FOUND THEN
        IF EXISTS (SELECT 1 FROM cluster_nodes WHERE id = p_node) THEN
            RETURN NULL;
        END IF;
        INSERT INTO cluster_nodes (id, cluster, hostname, pid, lease_until)
        VALUES (p_node, p_cluster, p_hostname, p_pid, now() + p_lease_ms * interval '1 millisecond');
    END IF;
    -- Nodes gone for a while are forgotten; their firms were taken over long before.
    DELETE FROM cluster_nodes WHERE cluster = p_cluster AND lease_until < now() - interval '10 minutes';
    SELECT array_agg(id ORDER BY id) INTO live
      FROM cluster_nodes
     WHERE cluster = p_cluster AND lease_until > now() AND NOT stopping;
    RETURN coalesce(live, '{}');
END
$$;

-- The live nodes of a cluster: lease held, not shutting down.
CREATE FUNCTION cp_cluster_live(p_cluster text) RETURNS uuid[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(id ORDER BY id), '{}')
      FROM cluster_nodes
     WHERE cluster = p_cluster AND lease_until > now() AND NOT stopping
$$;

-- Takes the active firms that have no owner, or whose owner's lease has lapsed, and that
-- belong on this node; returns them with their new fencing tokens. Only a node whose own
-- lease holds (and is not shutting down) takes anything, and the live nodes are read here,
-- not trusted from the caller. Concurrent claims of one firm serialise on its row, and the
-- loser no longer matches.
CREATE FUNCTION cp_cluster_claim(p_node uuid, p_cluster text)
RETURNS TABLE (firm uuid, fencing_token bigint) LANGUAGE sql AS $$
    WITH live AS (SELECT cp_cluster_live(p_cluster) AS nodes)
    UPDATE firm_ownership o
       SET node_id = p_node, fencing_token = o.fencing_token + 1, claimed_at = now()
      FROM firms f, live
     WHERE o.cluster = p_cluster
       AND p_node = ANY (live.nodes)
       AND f.id = o.owned_firm_id
       AND f.status = 'active'
       AND (o.node_id IS NULL
            OR o.node_id IN (SELECT id FROM cluster_nodes WHERE cluster = p_cluster AND lease_until <= now()))
       AND cp_cluster_preferred(o.owned_firm_id, live.nodes) = p_node
    RETURNING o.owned_firm_id, o.fencing_token
$$;

-- Firms this node holds that belong elsewhere now: another live node wins them, or the
-- firm was suspended.
CREATE FUNCTION cp_cluster_misplaced(p_node uuid, p_cluster text)
RETURNS SETOF uuid LANGUAGE sql STABLE AS $$
    SELECT o.owned_firm_id
      FROM firm_ownership o
      JOIN firms f ON f.id = o.owned_firm_id
     WHERE o.cluster = p_cluster
       AND o.node_id = p_node
       AND (f.status <> 'active'
            OR cp_cluster_preferred(o.owned_firm_id, cp_cluster_live(p_cluster)) IS DISTINCT FROM p_node)
$$;

-- Lets firms go (after their owned children stopped) and wakes the other nodes to claim them.
CREATE FUNCTION cp_cluster_release(p_node uuid, p_cluster text, p_firms uuid[])
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    released integer;
BEGIN
    UPDATE firm_ownership SET node_id = NULL, claimed_at = NULL
     WHERE cluster = p_cluster AND node_id = p_node AND owned_firm_id = ANY (p_firms);
    GET DIAGNOSTICS released = ROW_COUNT;
    IF released > 0 THEN
        PERFORM pg_notify('cp_cluster', p_cluster);
    END IF;
    RETURN released;
END
$$;

-- A firm has once-only work from now on: the node it belongs on claims it at once.
CREATE FUNCTION cp_cluster_require_owner(p_cluster text, p_firm uuid)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO firm_ownership (cluster, owned_firm_id) VALUES (p_cluster, p_firm)
    ON CONFLICT DO NOTHING;
    IF FOUND THEN
        PERFORM pg_notify('cp_cluster', p_cluster);
    END IF;
END
$$;

GRANT SELECT, INSERT, UPDATE, DELETE ON cluster_nodes TO consultantpro_app;
GRANT SELECT, INSERT, UPDATE ON firm_ownership TO consultantpro_app;
