-- RTT cluster schema for PostgreSQL (13 or later): Orleans membership (clustering) and grain state through the
-- ADO.NET providers (invariant "Npgsql"), and the participants' ledgers. The Merkle WAL's tables are created by
-- the WAL store (PostgresWalStore) in the same database; `rtt db init` applies both.
--
-- Written for RTT from the providers' query contract (the query keys, the parameters they bind and the columns
-- they read back); it is not derived from the SQL scripts of the Orleans repository.
--
-- Idempotent: `rtt db init CONNSTR` runs it as one batch, as often as wanted. A silo does not run it: it checks at
-- start that every table, function and query below is present (RTT-CLUSTER-001 names what is missing).
--
-- Parameters are bound by name without a prefix (written here as @Name; Npgsql matches them). A parameter whose
-- value may be NULL is cast to its type where it is used, so PostgreSQL never has to guess a type.
--
-- Clustering contract (Microsoft.Orleans.Clustering.AdoNet):
--   @DeploymentId TEXT (ClusterOptions.ClusterId), @Address TEXT, @Port INT, @Generation INT (the silo address),
--   @SiloName TEXT, @HostName TEXT, @Status INT (SiloStatus: 3 active, 6 dead), @ProxyPort INT (gateway port, 0 none),
--   @StartTime, @IAmAliveTime TIMESTAMPTZ (UTC), @SuspectTimes TEXT ("silo,date|silo,date", may be NULL),
--   @Version INT (the table version the caller last read: its etag).
--   MembershipReadAllKey / MembershipReadRowKey -> the version row joined with the member rows: at least one row,
--     columns Version, Address, Port, Generation, SiloName, HostName, Status, ProxyPort, SuspectTimes, StartTime,
--     IAmAliveTime; StartTime NULL on the row of a table without (matching) members.
--   InsertMembershipVersionKey -> one boolean: whether the version row was created.
--   InsertMembershipKey / UpdateMembershipKey -> one boolean: whether the table version still was @Version, in which
--     case the row is written and the version goes up by one, in one transaction; otherwise nothing changes.
--   UpdateIAmAlivetimeKey -> no result; never bumps the version.
--   GatewaysQueryKey -> Address, ProxyPort, Generation of the members with @Status.
--   DeleteMembershipTableEntriesKey, CleanupDefunctSiloEntriesKey, CleanupDefunctSiloEntryKey -> no result.
--
-- Persistence contract (Microsoft.Orleans.Persistence.AdoNet), as in the SQLite script (persistence.sql):
--   @ServiceId TEXT, @GrainTypeString TEXT (the state name), @GrainTypeHash INT, @GrainIdHash INT, @GrainIdN0 BIGINT,
--   @GrainIdN1 BIGINT, @GrainIdExtensionString TEXT (may be NULL), @GrainStateVersion INT (NULL: no etag yet),
--   @PayloadBinary BYTEA.
--   ReadFromStorageKey -> zero or one row: PayloadBinary, Version.
--   WriteToStorageKey / ClearStorageKey / DeleteStorageKey -> one row NewGrainStateVersion on success, none on a
--     version conflict.

CREATE TABLE IF NOT EXISTS OrleansQuery
(
    QueryKey  text PRIMARY KEY,
    QueryText text NOT NULL
);

-- Membership: one version row per cluster, one row per silo incarnation (address, port, generation).
CREATE TABLE IF NOT EXISTS rtt_membership_version
(
    deployment_id text PRIMARY KEY,
    version       integer NOT NULL DEFAULT 0 CHECK (version >= 0),
    modified_utc  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS rtt_membership
(
    deployment_id   text NOT NULL REFERENCES rtt_membership_version (deployment_id) ON DELETE CASCADE,
    address         text NOT NULL,
    port            integer NOT NULL,
    generation      integer NOT NULL,
    silo_name       text NOT NULL,
    host_name       text NOT NULL,
    status          integer NOT NULL,
    proxy_port      integer NOT NULL DEFAULT 0,
    suspect_times   text NULL,
    start_time      timestamptz NOT NULL,
    i_am_alive_time timestamptz NOT NULL,
    PRIMARY KEY (deployment_id, address, port, generation)
);

-- Adds a member when the table version is still p_version; the version goes up with it. A member that is already
-- there (unique violation) undoes the version bump too: the block's changes roll back together.
CREATE OR REPLACE FUNCTION rtt_membership_insert(p_deployment text, p_address text, p_port integer, p_generation integer,
    p_silo_name text, p_host_name text, p_status integer, p_proxy_port integer, p_start timestamptz, p_alive timestamptz,
    p_version integer) RETURNS boolean LANGUAGE plpgsql AS $fn$
BEGIN
    UPDATE rtt_membership_version SET version = version + 1, modified_utc = now()
    WHERE deployment_id = p_deployment AND version = p_version;
    IF NOT FOUND THEN
        RETURN false; -- another silo changed the table since the caller read it
    END IF;
    INSERT INTO rtt_membership (deployment_id, address, port, generation, silo_name, host_name, status, proxy_port,
                                suspect_times, start_time, i_am_alive_time)
    VALUES (p_deployment, p_address, p_port, p_generation, p_silo_name, p_host_name, p_status, coalesce(p_proxy_port, 0),
            NULL, p_start, p_alive);
    RETURN true;
EXCEPTION WHEN unique_violation THEN
    RETURN false;
END
$fn$;

-- Changes a member's status, suspicions and heartbeat under the same version rule.
CREATE OR REPLACE FUNCTION rtt_membership_update(p_deployment text, p_address text, p_port integer, p_generation integer,
    p_status integer, p_suspect text, p_alive timestamptz, p_version integer) RETURNS boolean LANGUAGE plpgsql AS $fn$
BEGIN
    UPDATE rtt_membership_version SET version = version + 1, modified_utc = now()
    WHERE deployment_id = p_deployment AND version = p_version;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE rtt_membership SET status = p_status, suspect_times = p_suspect, i_am_alive_time = p_alive
    WHERE deployment_id = p_deployment AND address = p_address AND port = p_port AND generation = p_generation;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no member %:%@%', p_address, p_port, p_generation USING ERRCODE = 'no_data_found';
    END IF;
    RETURN true;
EXCEPTION WHEN no_data_found THEN
    RETURN false; -- the version bump above is undone with the block
END
$fn$;

-- Grain state: one row per (service, state name, grain key); version is the etag (1 on first write, +1 after).
CREATE TABLE IF NOT EXISTS rtt_grain_state
(
    id              bigserial PRIMARY KEY,
    service_id      text    NOT NULL,
    state_name      text    NOT NULL,
    state_name_hash integer NOT NULL,
    grain_key_hash  integer NOT NULL,
    grain_key_n0    bigint  NOT NULL,
    grain_key_n1    bigint  NOT NULL,
    grain_key_ext   text    NULL,
    payload         bytea   NULL,
    version         integer NOT NULL CHECK (version BETWEEN 1 AND 2147483647),
    created_utc     timestamptz NOT NULL DEFAULT now(),
    modified_utc    timestamptz NOT NULL DEFAULT now()
);

-- A NULL extension (integer or Guid key) and an empty one ('' string key) are different keys.
CREATE UNIQUE INDEX IF NOT EXISTS ux_rtt_grain_state_key ON rtt_grain_state
    (grain_key_hash, state_name_hash, service_id, state_name, grain_key_n0, grain_key_n1,
     coalesce(grain_key_ext, ''), (grain_key_ext IS NULL));

-- For people: payloads as JSON text.
CREATE OR REPLACE VIEW rtt_grain_state_text AS
    SELECT id, service_id, state_name, grain_key_n0, grain_key_n1, grain_key_ext, version,
           convert_from(payload, 'UTF8') AS payload_text, created_utc, modified_utc
    FROM rtt_grain_state;

-- Participants' ledgers (route grains under their route key, node grains under node:<id>), JSON text. A target of
-- 4,096 characters or more (a node's lanes) is a row of its own under U+0001 <sha256 of its text> U+0001 <participant>,
-- which the ledger row refers to as {"$target": "sha256:..."}; a target is written once, not at every prepare and commit.
CREATE TABLE IF NOT EXISTS rtt_route_ledger
(
    route  text PRIMARY KEY,
    ledger text NOT NULL
);

-- Registry objects by content hash (sha256:<hex> of the canonical bytes): every silo publishes its workspace's
-- objects here and reads the ones it lacks from here, checking bytes against the hash (operations.md).
CREATE TABLE IF NOT EXISTS rtt_objects
(
    hash  text PRIMARY KEY,
    bytes bytea NOT NULL
);

INSERT INTO OrleansQuery (QueryKey, QueryText) VALUES
('InsertMembershipVersionKey', '
    WITH added AS (
        INSERT INTO rtt_membership_version (deployment_id) VALUES (@DeploymentId)
        ON CONFLICT (deployment_id) DO NOTHING
        RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM added);
'),
('MembershipReadAllKey', '
    SELECT v.version AS "Version", m.address AS "Address", m.port AS "Port", m.generation AS "Generation",
           m.silo_name AS "SiloName", m.host_name AS "HostName", m.status AS "Status", m.proxy_port AS "ProxyPort",
           m.suspect_times AS "SuspectTimes", m.start_time AS "StartTime", m.i_am_alive_time AS "IAmAliveTime"
    FROM rtt_membership_version v
    LEFT JOIN rtt_membership m ON m.deployment_id = v.deployment_id
    WHERE v.deployment_id = @DeploymentId;
'),
('MembershipReadRowKey', '
    SELECT v.version AS "Version", m.address AS "Address", m.port AS "Port", m.generation AS "Generation",
           m.silo_name AS "SiloName", m.host_name AS "HostName", m.status AS "Status", m.proxy_port AS "ProxyPort",
           m.suspect_times AS "SuspectTimes", m.start_time AS "StartTime", m.i_am_alive_time AS "IAmAliveTime"
    FROM rtt_membership_version v
    LEFT JOIN rtt_membership m ON m.deployment_id = v.deployment_id
        AND m.address = @Address AND m.port = @Port AND m.generation = @Generation
    WHERE v.deployment_id = @DeploymentId;
'),
('InsertMembershipKey', '
    SELECT rtt_membership_insert(@DeploymentId, @Address, @Port, @Generation, @SiloName, @HostName, @Status,
        CAST(@ProxyPort AS integer), @StartTime, @IAmAliveTime, @Version);
'),
('UpdateMembershipKey', '
    SELECT rtt_membership_update(@DeploymentId, @Address, @Port, @Generation, @Status,
        CAST(@SuspectTimes AS text), @IAmAliveTime, @Version);
'),
('UpdateIAmAlivetimeKey', '
    UPDATE rtt_membership SET i_am_alive_time = @IAmAliveTime
    WHERE deployment_id = @DeploymentId AND address = @Address AND port = @Port AND generation = @Generation;
'),
('GatewaysQueryKey', '
    SELECT address AS "Address", proxy_port AS "ProxyPort", generation AS "Generation"
    FROM rtt_membership
    WHERE deployment_id = @DeploymentId AND status = @Status AND proxy_port > 0;
'),
('DeleteMembershipTableEntriesKey', '
    DELETE FROM rtt_membership_version WHERE deployment_id = @DeploymentId;
'),
('CleanupDefunctSiloEntriesKey', '
    DELETE FROM rtt_membership
    WHERE deployment_id = @DeploymentId AND status = 6 AND i_am_alive_time < @IAmAliveTime;
'),
('CleanupDefunctSiloEntryKey', '
    DELETE FROM rtt_membership
    WHERE deployment_id = @DeploymentId AND address = @Address AND port = @Port AND generation = @Generation
      AND status = 6;
'),
('ReadFromStorageKey', '
    SELECT payload AS "PayloadBinary", version AS "Version"
    FROM rtt_grain_state
    WHERE grain_key_hash = @GrainIdHash AND state_name_hash = @GrainTypeHash
      AND service_id = @ServiceId AND state_name = @GrainTypeString
      AND grain_key_n0 = @GrainIdN0 AND grain_key_n1 = @GrainIdN1
      AND grain_key_ext IS NOT DISTINCT FROM CAST(@GrainIdExtensionString AS text);
'),
('WriteToStorageKey', '
    WITH inserted AS (
        INSERT INTO rtt_grain_state (service_id, state_name, state_name_hash, grain_key_hash,
                                     grain_key_n0, grain_key_n1, grain_key_ext, payload, version)
        SELECT @ServiceId, @GrainTypeString, @GrainTypeHash, @GrainIdHash,
               @GrainIdN0, @GrainIdN1, CAST(@GrainIdExtensionString AS text), CAST(@PayloadBinary AS bytea), 1
        WHERE CAST(@GrainStateVersion AS integer) IS NULL
        ON CONFLICT DO NOTHING
        RETURNING version),
    updated AS (
        UPDATE rtt_grain_state
        SET payload = CAST(@PayloadBinary AS bytea),
            version = CASE WHEN version >= 2147483647 THEN 1 ELSE version + 1 END,
            modified_utc = now()
        WHERE CAST(@GrainStateVersion AS integer) IS NOT NULL
          AND grain_key_hash = @GrainIdHash AND state_name_hash = @GrainTypeHash
          AND service_id = @ServiceId AND state_name = @GrainTypeString
          AND grain_key_n0 = @GrainIdN0 AND grain_key_n1 = @GrainIdN1
          AND grain_key_ext IS NOT DISTINCT FROM CAST(@GrainIdExtensionString AS text)
          AND version = CAST(@GrainStateVersion AS integer)
        RETURNING version)
    SELECT version AS "NewGrainStateVersion" FROM inserted
    UNION ALL
    SELECT version FROM updated;
'),
('ClearStorageKey', '
    UPDATE rtt_grain_state
    SET payload = NULL,
        version = CASE WHEN version >= 2147483647 THEN 1 ELSE version + 1 END,
        modified_utc = now()
    WHERE grain_key_hash = @GrainIdHash AND state_name_hash = @GrainTypeHash
      AND service_id = @ServiceId AND state_name = @GrainTypeString
      AND grain_key_n0 = @GrainIdN0 AND grain_key_n1 = @GrainIdN1
      AND grain_key_ext IS NOT DISTINCT FROM CAST(@GrainIdExtensionString AS text)
      AND version = CAST(@GrainStateVersion AS integer)
    RETURNING version AS "NewGrainStateVersion";
'),
('DeleteStorageKey', '
    DELETE FROM rtt_grain_state
    WHERE grain_key_hash = @GrainIdHash AND state_name_hash = @GrainTypeHash
      AND service_id = @ServiceId AND state_name = @GrainTypeString
      AND grain_key_n0 = @GrainIdN0 AND grain_key_n1 = @GrainIdN1
      AND grain_key_ext IS NOT DISTINCT FROM CAST(@GrainIdExtensionString AS text)
      AND version = CAST(@GrainStateVersion AS integer)
    RETURNING CASE WHEN version >= 2147483647 THEN 1 ELSE version + 1 END AS "NewGrainStateVersion";
')
ON CONFLICT (QueryKey) DO UPDATE SET QueryText = excluded.QueryText;
