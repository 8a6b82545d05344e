namespace Rtt.Core.Errors;

/// <summary>
/// Every stable error code in one place, so a code is never reused for something else.
/// docs/errors.md describes each one; a test checks that the two agree.
/// </summary>
public static class ErrorCodes
{
    // Canonical JSON and documents
    public const string JsonInvalid = "RTT-JSON-001";
    public const string JsonNumberNotFinite = "RTT-JSON-002";
    public const string JsonDuplicateKey = "RTT-JSON-003";
    public const string JsonLoneSurrogate = "RTT-JSON-004";
    public const string DocumentShape = "RTT-JSON-005";

    // Workspace
    public const string WorkspaceNotFound = "RTT-WS-001";
    public const string WorkspaceExists = "RTT-WS-002";
    public const string WorkspaceUnwritable = "RTT-WS-003";
    public const string WorkspaceFileMissing = "RTT-WS-004";
    public const string ExampleNotFound = "RTT-WS-005";
    public const string WorkspaceUnreadable = "RTT-WS-006";
    public const string WorkspaceFileTooLarge = "RTT-WS-007";

    // Keys, signatures, trust
    public const string KeyFileMissing = "RTT-KEY-001";
    public const string KeyFileInvalid = "RTT-KEY-002";
    public const string KeyExists = "RTT-KEY-003";
    public const string KeyUnknown = "RTT-KEY-004";
    public const string KeyNameInvalid = "RTT-KEY-005";
    public const string KeyRotationBlocked = "RTT-KEY-006";
    public const string Unsigned = "RTT-SIGN-001";
    public const string SignerUnknown = "RTT-SIGN-002";
    public const string SignerRevoked = "RTT-SIGN-003";
    public const string SignatureInvalid = "RTT-SIGN-004";
    public const string SignatureMalformed = "RTT-SIGN-005";

    // Registry: CAS, index, pack, schemas, discovery, MCP
    public const string CasMissing = "RTT-REG-001";
    public const string CasHashMismatch = "RTT-REG-002";
    public const string Immutable = "RTT-REG-003";
    public const string SchemaViolation = "RTT-REG-004";
    public const string BadSemver = "RTT-REG-005";
    public const string PackCorrupt = "RTT-REG-007";
    public const string IndexCorrupt = "RTT-REG-008";
    public const string NotFound = "RTT-REG-009";
    public const string YamlInvalid = "RTT-REG-010";
    public const string DuplicateAgent = "RTT-REG-011";
    public const string IdentityMismatch = "RTT-REG-012";
    public const string McpServerFailed = "RTT-MCP-001";
    public const string McpToolInvalid = "RTT-MCP-002";
    public const string McpDrift = "RTT-MCP-003";
    public const string McpNameInvalid = "RTT-MCP-004";
    public const string GatewayCredential = "RTT-MCP-005";
    public const string GatewayOptionInvalid = "RTT-MCP-006";

    // Planner
    public const string PlanInputInvalid = "RTT-PLAN-001";
    public const string PlanRangeInvalid = "RTT-PLAN-002";
    public const string PlanPinUnknownNode = "RTT-PLAN-003";
    public const string PlanManifestUnsigned = "RTT-PLAN-004";
    public const string PlanTopologyInvalid = "RTT-PLAN-005";
    public const string PlanMismatch = "RTT-PLAN-006";
    public const string PlanStatusInvalid = "RTT-PLAN-007";
    public const string PlanToolNameCollision = "RTT-PLAN-008";
    public const string PlanIdMissing = "RTT-PLAN-009";
    public const string PlanLaneIdCollision = "RTT-PLAN-010";

    // Silo, storage, client
    public const string PortInUse = "RTT-SILO-001";
    public const string StateUnwritable = "RTT-SILO-002";
    public const string StateCorrupt = "RTT-SILO-003";
    public const string SiloStartFailed = "RTT-SILO-004";
    public const string ConfigInvalid = "RTT-SILO-005";
    public const string SiloAlreadyRunning = "RTT-SILO-006";
    public const string NoSiloAnswers = "RTT-CLIENT-001";

    // Cluster (PostgreSQL)
    public const string ClusterSchemaMissing = "RTT-CLUSTER-001";
    public const string ClusterUnavailable = "RTT-CLUSTER-002";
    public const string ClusterNodeTaken = "RTT-CLUSTER-003";

    // Fabric lanes
    public const string LaneSetupFailed = "RTT-LANE-001";
    public const string LaneAttachFailed = "RTT-LANE-002";
    public const string LaneRouteUnknown = "RTT-LANE-003";
    public const string LaneConfigInvalid = "RTT-LANE-004";
    public const string LaneUpstreamGone = "RTT-LANE-005";
    public const string LaneRequestTimeout = "RTT-LANE-006";
    public const string LaneBreakerOpen = "RTT-LANE-007";
    public const string LaneTraceInvalid = "RTT-LANE-008";

    // Observability: rtt metrics / top / tap, SLO gates
    public const string ObsInputInvalid = "RTT-OBS-001";

    // Calls: endpoints behind routes (serve blocks, drivers, rtt call)
    public const string ServeInvalid = "RTT-CALL-001";
    public const string CallTimeout = "RTT-CALL-002";
    public const string EndpointUnavailable = "RTT-CALL-003";
    public const string DriverFault = "RTT-CALL-004";
    public const string DriverBusy = "RTT-CALL-005";
    public const string CallNoRoute = "RTT-CALL-006";
    public const string CallArgsInvalid = "RTT-CALL-007";
    public const string CallProtocolError = "RTT-CALL-008";
    public const string CallToolError = "RTT-CALL-009";
    public const string CallInputInvalid = "RTT-CALL-010";
    public const string CallCancelled = "RTT-CALL-011";

    // Stubs: the universal stub protocol (docs/stub-protocol.md)
    public const string StubCheckFailed = "RTT-STUB-001";
    public const string StubCheckUsage = "RTT-STUB-002";

    // Provider views: overlays, merged views, materialized files
    public const string ViewUnknownAgent = "RTT-VIEW-001";
    public const string ViewPatchInvalid = "RTT-VIEW-002";
    public const string ViewNameInvalid = "RTT-VIEW-003";
    public const string ViewConflict = "RTT-VIEW-004";
    public const string ViewTargetOutside = "RTT-VIEW-005";
    public const string ViewNotOwned = "RTT-VIEW-006";
    public const string ViewWriteFailed = "RTT-VIEW-007";
    public const string ViewUnknownEnv = "RTT-VIEW-008";
    public const string ViewOwnedInvalid = "RTT-VIEW-009";
    public const string ViewImportInvalid = "RTT-VIEW-010";
    public const string ViewProvenance = "RTT-VIEW-011";
    public const string ViewSetMissing = "RTT-VIEW-012";
    public const string ViewMountPoint = "RTT-VIEW-013";
    public const string ViewFuseUnavailable = "RTT-VIEW-014";
    public const string ViewMountVerify = "RTT-VIEW-015";
    public const string ViewUnmount = "RTT-VIEW-016";

    // Merkle WAL
    public const string WalUnavailable = "RTT-WAL-001";
    public const string WalTampered = "RTT-WAL-002";
    public const string WalConflict = "RTT-WAL-003";
    public const string WalProofRange = "RTT-WAL-004";
    public const string WalPlanMissing = "RTT-WAL-005";

    // Reconciler: applying plans
    public const string ApplyStale = "RTT-APPLY-001";
    public const string ApplyBusy = "RTT-APPLY-002";
    public const string ApplyUnanswered = "RTT-APPLY-006";
    public const string ApplyAborted = "RTT-APPLY-003";
    public const string ApplyRolledBack = "RTT-APPLY-004";
    public const string ApplyNothingToRollBack = "RTT-APPLY-005";
    public const string ApplyChangeBase = "RTT-APPLY-007";

    // Security: file modes, capability tokens, driver sandbox (docs/security.md, docs/tokens.md)
    public const string ModesTooOpen = "RTT-SEC-001";
    public const string SandboxUnavailable = "RTT-SEC-002";
    public const string SandboxRequired = "RTT-SEC-003";
    public const string TokenMalformed = "RTT-TOKEN-001";
    public const string TokenShape = "RTT-TOKEN-002";
    public const string TokenTooLarge = "RTT-TOKEN-003";
    public const string TokenIssuerUnknown = "RTT-TOKEN-004";
    public const string TokenIssuerRevoked = "RTT-TOKEN-005";
    public const string TokenSignatureInvalid = "RTT-TOKEN-006";
    public const string TokenChainBroken = "RTT-TOKEN-007";
    public const string TokenProofInvalid = "RTT-TOKEN-008";
    public const string TokenWidened = "RTT-TOKEN-009";
    public const string TokenExpired = "RTT-TOKEN-010";
    public const string TokenNotYetValid = "RTT-TOKEN-011";
    public const string TokenRevoked = "RTT-TOKEN-012";
    public const string TokenReplayed = "RTT-TOKEN-013";
    public const string TokenRouteDenied = "RTT-TOKEN-014";
    public const string TokenVerbDenied = "RTT-TOKEN-015";
    public const string TokenMissing = "RTT-TOKEN-016";
    public const string TokenSealed = "RTT-TOKEN-017";
    public const string TokenReplayCacheFull = "RTT-TOKEN-018";
    public const string TokenLaneExpired = "RTT-TOKEN-019";
    public const string TokenRequestInvalid = "RTT-TOKEN-020";
    public const string TokenScopeDenied = "RTT-TOKEN-021";
    public const string TokenMacKeyUnknown = "RTT-TOKEN-022";

    // Autotune: traces, replay, tuned profiles (docs/autotune.md)
    public const string TuneTraceMissing = "RTT-TUNE-001";
    public const string TuneTraceMalformed = "RTT-TUNE-002";
    public const string TuneTraceEmpty = "RTT-TUNE-003";
    public const string TuneInputInvalid = "RTT-TUNE-004";
    public const string TuneProfileInvalid = "RTT-TUNE-005";
    public const string TuneLiveRefused = "RTT-TUNE-006";
    public const string TuneReplayFailed = "RTT-TUNE-007";
}
