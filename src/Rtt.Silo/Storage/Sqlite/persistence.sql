-- RTT grain persistence schema for SQLite.
--
-- Used by Microsoft.Orleans.Persistence.AdoNet with Invariant "System.Data.SQLite"
-- (which Orleans resolves to Microsoft.Data.Sqlite.SqliteFactory).
-- Written for RTT from the provider's query contract; it is not derived from
-- the SQL scripts of the Orleans repository.
--
-- Idempotent: run it as one batch on every silo start, BEFORE the silo starts
-- (the provider loads its queries from OrleansQuery while the silo starts).
-- Do not run it inside an explicit transaction: SQLite cannot switch to WAL
-- from inside a transaction. Needs SQLite 3.35 or later (RETURNING); the
-- e_sqlite3 library bundled with Microsoft.Data.Sqlite 10.x is newer.
--
-- Query contract, as the provider calls it:
--   Parameters (bound without a prefix; written here as @Name):
--     @ServiceId               TEXT     ClusterOptions.ServiceId
--     @GrainTypeString         TEXT     the STATE NAME (e.g. [PersistentState("player")]),
--                                       not the grain class: the grain type is not sent
--     @GrainTypeHash           INTEGER  32-bit signed hash of @GrainTypeString
--     @GrainIdHash             INTEGER  32-bit signed hash of the grain key
--     @GrainIdN0, @GrainIdN1   INTEGER  64-bit key parts: Guid key = both halves,
--                                       integer key = (0, key), string key = (0, 0)
--     @GrainIdExtensionString  TEXT     key extension, the whole key for string keys,
--                                       NULL for plain integer or Guid keys
--     @GrainStateVersion       INTEGER  the ETag held by the grain; NULL if it has none
--     @PayloadBinary           BLOB     serialized state (write only). The default
--                                       serializer writes UTF-8 JSON, always as bytes.
--   ReadFromStorageKey  -> zero or one row: PayloadBinary (BLOB or NULL), Version.
--   WriteToStorageKey   -> one row with NewGrainStateVersion on success;
--                          no row on a version conflict (InconsistentStateException).
--   ClearStorageKey     -> one row, new version in column 0, on success; no row on conflict.
--   DeleteStorageKey    -> as ClearStorageKey, but removes the row
--                          (only used with AdoNetGrainStorageOptions.DeleteStateOnClear = true).

-- Persistent per database file; lets readers run alongside the single writer.
PRAGMA journal_mode = WAL;
-- Grain state writes run with synchronous = NORMAL (set by the write query on its connection): in WAL mode a
-- commit survives a crash of the process, and the fsync happens at checkpoints rather than on every write. What
-- must survive a power cut is in the Merkle WAL (its own connection, synchronous = FULL): the reconciler's
-- decisions; a participant that lost its reservation is given its target again with the commit.

-- Route participants' ledgers (SqliteLedgerStore: group-committed JSON rows, one per route).
CREATE TABLE IF NOT EXISTS rtt_route_ledger (route TEXT PRIMARY KEY, ledger TEXT NOT NULL);

-- The provider reads its SQL from this table by QueryKey.
CREATE TABLE IF NOT EXISTS OrleansQuery
(
    QueryKey  TEXT NOT NULL PRIMARY KEY,
    QueryText TEXT NOT NULL
);

-- One row per (service, state name, grain key).
-- version is the ETag: 1 on first write, +1 on every write and clear.
-- A cleared state keeps its row with payload NULL, so its version keeps counting.
CREATE TABLE IF NOT EXISTS rtt_grain_state
(
    id              INTEGER PRIMARY KEY,
    service_id      TEXT    NOT NULL,
    state_name      TEXT    NOT NULL,
    state_name_hash INTEGER NOT NULL,
    grain_key_hash  INTEGER NOT NULL,
    grain_key_n0    INTEGER NOT NULL,
    grain_key_n1    INTEGER NOT NULL,
    grain_key_ext   TEXT    NULL,
    payload         BLOB    NULL CHECK (payload IS NULL OR typeof(payload) = 'blob'),
    version         INTEGER NOT NULL CHECK (version BETWEEN 1 AND 2147483647),
    created_utc     TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP,
    modified_utc    TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- Uniqueness of a grain's state row. grain_key_ext may be NULL; ifnull(..., 0)
-- turns NULL into an INTEGER, which never equals any TEXT extension.
-- The leading equality columns also serve every lookup below.
CREATE UNIQUE INDEX IF NOT EXISTS ux_rtt_grain_state_key
    ON rtt_grain_state
    (
        grain_key_hash,
        state_name_hash,
        service_id,
        state_name,
        grain_key_n0,
        grain_key_n1,
        ifnull(grain_key_ext, 0)
    );

-- Read-only helper for people: the payload as text (JSON with the default serializer).
CREATE VIEW IF NOT EXISTS rtt_grain_state_text AS
    SELECT id, service_id, state_name, grain_key_n0, grain_key_n1, grain_key_ext,
           version, CAST(payload AS TEXT) AS payload_text, created_utc, modified_utc
    FROM rtt_grain_state;

-- Provider queries. Each text is a plain SQL literal: no quote characters inside.
-- The row filter used by read, write, clear and delete is the same everywhere:
--   grain_key_hash = @GrainIdHash AND state_name_hash = @GrainTypeHash
--   AND service_id = @ServiceId AND state_name = @GrainTypeString
--   AND grain_key_n0 = @GrainIdN0 AND grain_key_n1 = @GrainIdN1
--   AND grain_key_ext IS @GrainIdExtensionString      (IS: NULL-safe equality)
INSERT INTO OrleansQuery (QueryKey, QueryText) VALUES
(
    'ReadFromStorageKey',
    '
    SELECT payload AS PayloadBinary,
           version AS Version
    FROM rtt_grain_state
    WHERE grain_key_hash = @GrainIdHash
      AND state_name_hash = @GrainTypeHash
      AND service_id = @ServiceId
      AND state_name = @GrainTypeString
      AND grain_key_n0 = @GrainIdN0
      AND grain_key_n1 = @GrainIdN1
      AND grain_key_ext IS @GrainIdExtensionString;
    '
),
(
    -- Two guarded statements; at most one of them can change a row.
    -- No ETag: insert version 1 unless a row exists (then no row comes back = conflict).
    -- ETag: bump the version only where it still equals the ETag.
    'WriteToStorageKey',
    '
    PRAGMA synchronous = NORMAL;
    INSERT INTO rtt_grain_state
        (service_id, state_name, state_name_hash, grain_key_hash,
         grain_key_n0, grain_key_n1, grain_key_ext, payload, version)
    SELECT @ServiceId, @GrainTypeString, @GrainTypeHash, @GrainIdHash,
           @GrainIdN0, @GrainIdN1, @GrainIdExtensionString, @PayloadBinary, 1
    WHERE @GrainStateVersion IS NULL
    ON CONFLICT DO NOTHING
    RETURNING version AS NewGrainStateVersion;

    UPDATE rtt_grain_state
    SET payload = @PayloadBinary,
        version = CASE WHEN version >= 2147483647 THEN 1 ELSE version + 1 END,
        modified_utc = CURRENT_TIMESTAMP
    WHERE @GrainStateVersion IS NOT NULL
      AND grain_key_hash = @GrainIdHash
      AND state_name_hash = @GrainTypeHash
      AND service_id = @ServiceId
      AND state_name = @GrainTypeString
      AND grain_key_n0 = @GrainIdN0
      AND grain_key_n1 = @GrainIdN1
      AND grain_key_ext IS @GrainIdExtensionString
      AND version = @GrainStateVersion
    RETURNING version AS NewGrainStateVersion;
    '
),
(
    -- Keeps the row, drops the payload, bumps the version.
    'ClearStorageKey',
    '
    UPDATE rtt_grain_state
    SET payload = NULL,
        version = CASE WHEN version >= 2147483647 THEN 1 ELSE version + 1 END,
        modified_utc = CURRENT_TIMESTAMP
    WHERE grain_key_hash = @GrainIdHash
      AND state_name_hash = @GrainTypeHash
      AND service_id = @ServiceId
      AND state_name = @GrainTypeString
      AND grain_key_n0 = @GrainIdN0
      AND grain_key_n1 = @GrainIdN1
      AND grain_key_ext IS @GrainIdExtensionString
      AND version = @GrainStateVersion
    RETURNING version AS NewGrainStateVersion;
    '
),
(
    -- Removes the row. Returns a value different from the ETag to signal success;
    -- the provider then sets the grain ETag to NULL.
    'DeleteStorageKey',
    '
    DELETE FROM rtt_grain_state
    WHERE grain_key_hash = @GrainIdHash
      AND state_name_hash = @GrainTypeHash
      AND service_id = @ServiceId
      AND state_name = @GrainTypeString
      AND grain_key_n0 = @GrainIdN0
      AND grain_key_n1 = @GrainIdN1
      AND grain_key_ext IS @GrainIdExtensionString
      AND version = @GrainStateVersion
    RETURNING CASE WHEN version >= 2147483647 THEN 1 ELSE version + 1 END AS NewGrainStateVersion;
    '
)
ON CONFLICT (QueryKey) DO UPDATE SET QueryText = excluded.QueryText;
