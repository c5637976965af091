from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModuleState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STATE_UNSPECIFIED: _ClassVar[ModuleState]
    STATE_STOP: _ClassVar[ModuleState]
    STATE_WAIT: _ClassVar[ModuleState]
    STATE_ALONE: _ClassVar[ModuleState]
    STATE_PRIM: _ClassVar[ModuleState]
    STATE_SECOND: _ClassVar[ModuleState]
    STATE_UP: _ClassVar[ModuleState]

class Readiness(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    READINESS_UNSPECIFIED: _ClassVar[Readiness]
    READINESS_NOT_READY: _ClassVar[Readiness]
    READINESS_TRANSIENT: _ClassVar[Readiness]
    READINESS_READY: _ClassVar[Readiness]

class Command(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMMAND_UNSPECIFIED: _ClassVar[Command]
    COMMAND_START: _ClassVar[Command]
    COMMAND_STOP: _ClassVar[Command]
    COMMAND_RESTART: _ClassVar[Command]
    COMMAND_STOPSTART: _ClassVar[Command]
    COMMAND_FORCESTOP: _ClassVar[Command]
    COMMAND_SWAP: _ClassVar[Command]
    COMMAND_PRIM: _ClassVar[Command]
    COMMAND_SECOND: _ClassVar[Command]
    COMMAND_MIGRATE: _ClassVar[Command]

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_NODE: _ClassVar[Role]
    ROLE_OPERATOR: _ClassVar[Role]
    ROLE_ADMINISTRATOR: _ClassVar[Role]
STATE_UNSPECIFIED: ModuleState
STATE_STOP: ModuleState
STATE_WAIT: ModuleState
STATE_ALONE: ModuleState
STATE_PRIM: ModuleState
STATE_SECOND: ModuleState
STATE_UP: ModuleState
READINESS_UNSPECIFIED: Readiness
READINESS_NOT_READY: Readiness
READINESS_TRANSIENT: Readiness
READINESS_READY: Readiness
COMMAND_UNSPECIFIED: Command
COMMAND_START: Command
COMMAND_STOP: Command
COMMAND_RESTART: Command
COMMAND_STOPSTART: Command
COMMAND_FORCESTOP: Command
COMMAND_SWAP: Command
COMMAND_PRIM: Command
COMMAND_SECOND: Command
COMMAND_MIGRATE: Command
ROLE_UNSPECIFIED: Role
ROLE_NODE: Role
ROLE_OPERATOR: Role
ROLE_ADMINISTRATOR: Role

class LinkStatus(_message.Message):
    __slots__ = ("name", "local_address", "peer_address", "up", "last_heard_age_s", "received", "rejected", "gap_max_s", "gap_p99_s", "lateness_max_s", "lateness_p99_s")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PEER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    UP_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARD_AGE_S_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    GAP_MAX_S_FIELD_NUMBER: _ClassVar[int]
    GAP_P99_S_FIELD_NUMBER: _ClassVar[int]
    LATENESS_MAX_S_FIELD_NUMBER: _ClassVar[int]
    LATENESS_P99_S_FIELD_NUMBER: _ClassVar[int]
    name: str
    local_address: str
    peer_address: str
    up: bool
    last_heard_age_s: float
    received: int
    rejected: int
    gap_max_s: float
    gap_p99_s: float
    lateness_max_s: float
    lateness_p99_s: float
    def __init__(self, name: _Optional[str] = ..., local_address: _Optional[str] = ..., peer_address: _Optional[str] = ..., up: bool = ..., last_heard_age_s: _Optional[float] = ..., received: _Optional[int] = ..., rejected: _Optional[int] = ..., gap_max_s: _Optional[float] = ..., gap_p99_s: _Optional[float] = ..., lateness_max_s: _Optional[float] = ..., lateness_p99_s: _Optional[float] = ...) -> None: ...

class CheckerStatus(_message.Message):
    __slots__ = ("name", "kind", "ok", "detail", "consecutive_failures", "action", "when", "active")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    WHEN_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    ok: bool
    detail: str
    consecutive_failures: int
    action: str
    when: str
    active: bool
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., ok: bool = ..., detail: _Optional[str] = ..., consecutive_failures: _Optional[int] = ..., action: _Optional[str] = ..., when: _Optional[str] = ..., active: bool = ...) -> None: ...

class ResyncProgress(_message.Message):
    __slots__ = ("active", "bytes_done", "bytes_total", "rate_bytes_per_s", "eta_s")
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    BYTES_DONE_FIELD_NUMBER: _ClassVar[int]
    BYTES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    RATE_BYTES_PER_S_FIELD_NUMBER: _ClassVar[int]
    ETA_S_FIELD_NUMBER: _ClassVar[int]
    active: bool
    bytes_done: int
    bytes_total: int
    rate_bytes_per_s: float
    eta_s: float
    def __init__(self, active: bool = ..., bytes_done: _Optional[int] = ..., bytes_total: _Optional[int] = ..., rate_bytes_per_s: _Optional[float] = ..., eta_s: _Optional[float] = ...) -> None: ...

class VmDisk(_message.Message):
    __slots__ = ("target", "path", "size_bytes")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    target: str
    path: str
    size_bytes: int
    def __init__(self, target: _Optional[str] = ..., path: _Optional[str] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class VmInfo(_message.Message):
    __slots__ = ("domain", "state", "vcpus", "memory_bytes", "disks", "persistent", "module")
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    VCPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    DISKS_FIELD_NUMBER: _ClassVar[int]
    PERSISTENT_FIELD_NUMBER: _ClassVar[int]
    MODULE_FIELD_NUMBER: _ClassVar[int]
    domain: str
    state: str
    vcpus: int
    memory_bytes: int
    disks: _containers.RepeatedCompositeFieldContainer[VmDisk]
    persistent: bool
    module: str
    def __init__(self, domain: _Optional[str] = ..., state: _Optional[str] = ..., vcpus: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., disks: _Optional[_Iterable[_Union[VmDisk, _Mapping]]] = ..., persistent: bool = ..., module: _Optional[str] = ...) -> None: ...

class ListVmsRequest(_message.Message):
    __slots__ = ("libvirt_uri",)
    LIBVIRT_URI_FIELD_NUMBER: _ClassVar[int]
    libvirt_uri: str
    def __init__(self, libvirt_uri: _Optional[str] = ...) -> None: ...

class ListVmsReply(_message.Message):
    __slots__ = ("vms",)
    VMS_FIELD_NUMBER: _ClassVar[int]
    vms: _containers.RepeatedCompositeFieldContainer[VmInfo]
    def __init__(self, vms: _Optional[_Iterable[_Union[VmInfo, _Mapping]]] = ...) -> None: ...

class AdoptVmRequest(_message.Message):
    __slots__ = ("domain", "directory", "module", "dry_run", "libvirt_uri")
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    MODULE_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    LIBVIRT_URI_FIELD_NUMBER: _ClassVar[int]
    domain: str
    directory: str
    module: str
    dry_run: bool
    libvirt_uri: str
    def __init__(self, domain: _Optional[str] = ..., directory: _Optional[str] = ..., module: _Optional[str] = ..., dry_run: bool = ..., libvirt_uri: _Optional[str] = ...) -> None: ...

class AdoptVmReply(_message.Message):
    __slots__ = ("moves", "config", "done")
    MOVES_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    moves: _containers.RepeatedScalarFieldContainer[str]
    config: str
    done: bool
    def __init__(self, moves: _Optional[_Iterable[str]] = ..., config: _Optional[str] = ..., done: bool = ...) -> None: ...

class ModuleStatus(_message.Message):
    __slots__ = ("name", "kind", "state", "readiness", "uptodate", "degraded", "split_brain", "reason", "last_rule", "generations", "synctime", "vip", "vip_held", "resource_running", "checkers", "resync", "preferred_node", "state_since", "peer_state", "peer_readiness", "vm", "last_start_s", "resource_state", "activity", "activity_since", "last_stop_s", "data_plane")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    READINESS_FIELD_NUMBER: _ClassVar[int]
    UPTODATE_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    SPLIT_BRAIN_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LAST_RULE_FIELD_NUMBER: _ClassVar[int]
    GENERATIONS_FIELD_NUMBER: _ClassVar[int]
    SYNCTIME_FIELD_NUMBER: _ClassVar[int]
    VIP_FIELD_NUMBER: _ClassVar[int]
    VIP_HELD_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_RUNNING_FIELD_NUMBER: _ClassVar[int]
    CHECKERS_FIELD_NUMBER: _ClassVar[int]
    RESYNC_FIELD_NUMBER: _ClassVar[int]
    PREFERRED_NODE_FIELD_NUMBER: _ClassVar[int]
    STATE_SINCE_FIELD_NUMBER: _ClassVar[int]
    PEER_STATE_FIELD_NUMBER: _ClassVar[int]
    PEER_READINESS_FIELD_NUMBER: _ClassVar[int]
    VM_FIELD_NUMBER: _ClassVar[int]
    LAST_START_S_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_STATE_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_SINCE_FIELD_NUMBER: _ClassVar[int]
    LAST_STOP_S_FIELD_NUMBER: _ClassVar[int]
    DATA_PLANE_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    state: ModuleState
    readiness: Readiness
    uptodate: bool
    degraded: bool
    split_brain: bool
    reason: str
    last_rule: str
    generations: _containers.RepeatedScalarFieldContainer[str]
    synctime: float
    vip: str
    vip_held: bool
    resource_running: bool
    checkers: _containers.RepeatedCompositeFieldContainer[CheckerStatus]
    resync: ResyncProgress
    preferred_node: str
    state_since: float
    peer_state: ModuleState
    peer_readiness: Readiness
    vm: VmInfo
    last_start_s: float
    resource_state: str
    activity: str
    activity_since: float
    last_stop_s: float
    data_plane: DataPlaneInfo
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., state: _Optional[_Union[ModuleState, str]] = ..., readiness: _Optional[_Union[Readiness, str]] = ..., uptodate: bool = ..., degraded: bool = ..., split_brain: bool = ..., reason: _Optional[str] = ..., last_rule: _Optional[str] = ..., generations: _Optional[_Iterable[str]] = ..., synctime: _Optional[float] = ..., vip: _Optional[str] = ..., vip_held: bool = ..., resource_running: bool = ..., checkers: _Optional[_Iterable[_Union[CheckerStatus, _Mapping]]] = ..., resync: _Optional[_Union[ResyncProgress, _Mapping]] = ..., preferred_node: _Optional[str] = ..., state_since: _Optional[float] = ..., peer_state: _Optional[_Union[ModuleState, str]] = ..., peer_readiness: _Optional[_Union[Readiness, str]] = ..., vm: _Optional[_Union[VmInfo, _Mapping]] = ..., last_start_s: _Optional[float] = ..., resource_state: _Optional[str] = ..., activity: _Optional[str] = ..., activity_since: _Optional[float] = ..., last_stop_s: _Optional[float] = ..., data_plane: _Optional[_Union[DataPlaneInfo, _Mapping]] = ...) -> None: ...

class DataPlaneInfo(_message.Message):
    __slots__ = ("pid", "version", "role", "mode", "mounts", "started_at")
    PID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MOUNTS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    pid: int
    version: str
    role: str
    mode: str
    mounts: int
    started_at: float
    def __init__(self, pid: _Optional[int] = ..., version: _Optional[str] = ..., role: _Optional[str] = ..., mode: _Optional[str] = ..., mounts: _Optional[int] = ..., started_at: _Optional[float] = ...) -> None: ...

class NodeStatus(_message.Message):
    __slots__ = ("cluster_name", "node_id", "peer_id", "api_address", "peer_api_address", "peer_alive", "witness_configured", "witness_reachable", "links", "modules", "version", "time", "heartbeats_rejected", "config_version", "peer_config_version", "configured", "client_role", "protocol", "peer_protocol", "peer_version", "version_mismatch", "peer_incompatible", "peer_leaving_s")
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    API_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PEER_API_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PEER_ALIVE_FIELD_NUMBER: _ClassVar[int]
    WITNESS_CONFIGURED_FIELD_NUMBER: _ClassVar[int]
    WITNESS_REACHABLE_FIELD_NUMBER: _ClassVar[int]
    LINKS_FIELD_NUMBER: _ClassVar[int]
    MODULES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    HEARTBEATS_REJECTED_FIELD_NUMBER: _ClassVar[int]
    CONFIG_VERSION_FIELD_NUMBER: _ClassVar[int]
    PEER_CONFIG_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONFIGURED_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ROLE_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    PEER_PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    PEER_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSION_MISMATCH_FIELD_NUMBER: _ClassVar[int]
    PEER_INCOMPATIBLE_FIELD_NUMBER: _ClassVar[int]
    PEER_LEAVING_S_FIELD_NUMBER: _ClassVar[int]
    cluster_name: str
    node_id: str
    peer_id: str
    api_address: str
    peer_api_address: str
    peer_alive: bool
    witness_configured: bool
    witness_reachable: bool
    links: _containers.RepeatedCompositeFieldContainer[LinkStatus]
    modules: _containers.RepeatedCompositeFieldContainer[ModuleStatus]
    version: str
    time: float
    heartbeats_rejected: int
    config_version: int
    peer_config_version: int
    configured: bool
    client_role: Role
    protocol: str
    peer_protocol: str
    peer_version: str
    version_mismatch: str
    peer_incompatible: bool
    peer_leaving_s: float
    def __init__(self, cluster_name: _Optional[str] = ..., node_id: _Optional[str] = ..., peer_id: _Optional[str] = ..., api_address: _Optional[str] = ..., peer_api_address: _Optional[str] = ..., peer_alive: bool = ..., witness_configured: bool = ..., witness_reachable: bool = ..., links: _Optional[_Iterable[_Union[LinkStatus, _Mapping]]] = ..., modules: _Optional[_Iterable[_Union[ModuleStatus, _Mapping]]] = ..., version: _Optional[str] = ..., time: _Optional[float] = ..., heartbeats_rejected: _Optional[int] = ..., config_version: _Optional[int] = ..., peer_config_version: _Optional[int] = ..., configured: bool = ..., client_role: _Optional[_Union[Role, str]] = ..., protocol: _Optional[str] = ..., peer_protocol: _Optional[str] = ..., peer_version: _Optional[str] = ..., version_mismatch: _Optional[str] = ..., peer_incompatible: bool = ..., peer_leaving_s: _Optional[float] = ...) -> None: ...

class LogEntry(_message.Message):
    __slots__ = ("time", "node_id", "module", "level", "message", "old_state", "new_state", "cause", "who", "seq", "old_readiness", "new_readiness")
    TIME_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    MODULE_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    OLD_STATE_FIELD_NUMBER: _ClassVar[int]
    NEW_STATE_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    WHO_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    OLD_READINESS_FIELD_NUMBER: _ClassVar[int]
    NEW_READINESS_FIELD_NUMBER: _ClassVar[int]
    time: float
    node_id: str
    module: str
    level: str
    message: str
    old_state: ModuleState
    new_state: ModuleState
    cause: str
    who: str
    seq: int
    old_readiness: Readiness
    new_readiness: Readiness
    def __init__(self, time: _Optional[float] = ..., node_id: _Optional[str] = ..., module: _Optional[str] = ..., level: _Optional[str] = ..., message: _Optional[str] = ..., old_state: _Optional[_Union[ModuleState, str]] = ..., new_state: _Optional[_Union[ModuleState, str]] = ..., cause: _Optional[str] = ..., who: _Optional[str] = ..., seq: _Optional[int] = ..., old_readiness: _Optional[_Union[Readiness, str]] = ..., new_readiness: _Optional[_Union[Readiness, str]] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("log_level", "keepalive_s")
    LOG_LEVEL_FIELD_NUMBER: _ClassVar[int]
    KEEPALIVE_S_FIELD_NUMBER: _ClassVar[int]
    log_level: str
    keepalive_s: float
    def __init__(self, log_level: _Optional[str] = ..., keepalive_s: _Optional[float] = ...) -> None: ...

class StatusEvent(_message.Message):
    __slots__ = ("seq", "status", "logs")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LOGS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    status: NodeStatus
    logs: _containers.RepeatedCompositeFieldContainer[LogEntry]
    def __init__(self, seq: _Optional[int] = ..., status: _Optional[_Union[NodeStatus, _Mapping]] = ..., logs: _Optional[_Iterable[_Union[LogEntry, _Mapping]]] = ...) -> None: ...

class CommandRequest(_message.Message):
    __slots__ = ("module", "command", "fullsync", "issued_by")
    MODULE_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    FULLSYNC_FIELD_NUMBER: _ClassVar[int]
    ISSUED_BY_FIELD_NUMBER: _ClassVar[int]
    module: str
    command: Command
    fullsync: bool
    issued_by: str
    def __init__(self, module: _Optional[str] = ..., command: _Optional[_Union[Command, str]] = ..., fullsync: bool = ..., issued_by: _Optional[str] = ...) -> None: ...

class CommandReply(_message.Message):
    __slots__ = ("accepted", "message", "module")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MODULE_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    message: str
    module: ModuleStatus
    def __init__(self, accepted: bool = ..., message: _Optional[str] = ..., module: _Optional[_Union[ModuleStatus, _Mapping]] = ...) -> None: ...

class GetLogsRequest(_message.Message):
    __slots__ = ("module", "limit", "min_level", "text")
    MODULE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    MIN_LEVEL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    module: str
    limit: int
    min_level: str
    text: str
    def __init__(self, module: _Optional[str] = ..., limit: _Optional[int] = ..., min_level: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class GetLogsReply(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[LogEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[LogEntry, _Mapping]]] = ...) -> None: ...

class GetConfigRequest(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...

class GetConfigReply(_message.Message):
    __slots__ = ("toml", "version", "path")
    TOML_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    toml: str
    version: int
    path: str
    def __init__(self, toml: _Optional[str] = ..., version: _Optional[int] = ..., path: _Optional[str] = ...) -> None: ...

class PrepareConfigRequest(_message.Message):
    __slots__ = ("toml", "transaction", "expected_version", "secret")
    TOML_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    toml: str
    transaction: str
    expected_version: int
    secret: str
    def __init__(self, toml: _Optional[str] = ..., transaction: _Optional[str] = ..., expected_version: _Optional[int] = ..., secret: _Optional[str] = ...) -> None: ...

class PrepareConfigReply(_message.Message):
    __slots__ = ("accepted", "error", "version", "changes")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    error: str
    version: int
    changes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, accepted: bool = ..., error: _Optional[str] = ..., version: _Optional[int] = ..., changes: _Optional[_Iterable[str]] = ...) -> None: ...

class CommitConfigRequest(_message.Message):
    __slots__ = ("transaction",)
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    transaction: str
    def __init__(self, transaction: _Optional[str] = ...) -> None: ...

class CommitConfigReply(_message.Message):
    __slots__ = ("version", "changes")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    version: int
    changes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, version: _Optional[int] = ..., changes: _Optional[_Iterable[str]] = ...) -> None: ...

class AbortConfigRequest(_message.Message):
    __slots__ = ("transaction",)
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    transaction: str
    def __init__(self, transaction: _Optional[str] = ...) -> None: ...

class AbortConfigReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ConfigVersionInfo(_message.Message):
    __slots__ = ("version", "applied_at", "applied_by", "running")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    APPLIED_AT_FIELD_NUMBER: _ClassVar[int]
    APPLIED_BY_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    version: int
    applied_at: float
    applied_by: str
    running: bool
    def __init__(self, version: _Optional[int] = ..., applied_at: _Optional[float] = ..., applied_by: _Optional[str] = ..., running: bool = ...) -> None: ...

class ListConfigVersionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListConfigVersionsReply(_message.Message):
    __slots__ = ("versions",)
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[ConfigVersionInfo]
    def __init__(self, versions: _Optional[_Iterable[_Union[ConfigVersionInfo, _Mapping]]] = ...) -> None: ...

class ProbeHostRequest(_message.Message):
    __slots__ = ("paths", "addresses")
    PATHS_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    paths: _containers.RepeatedScalarFieldContainer[str]
    addresses: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, paths: _Optional[_Iterable[str]] = ..., addresses: _Optional[_Iterable[str]] = ...) -> None: ...

class PathProbe(_message.Message):
    __slots__ = ("path", "exists", "is_dir", "empty", "error")
    PATH_FIELD_NUMBER: _ClassVar[int]
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    IS_DIR_FIELD_NUMBER: _ClassVar[int]
    EMPTY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    path: str
    exists: bool
    is_dir: bool
    empty: bool
    error: str
    def __init__(self, path: _Optional[str] = ..., exists: bool = ..., is_dir: bool = ..., empty: bool = ..., error: _Optional[str] = ...) -> None: ...

class AddressProbe(_message.Message):
    __slots__ = ("address", "answers", "local")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    LOCAL_FIELD_NUMBER: _ClassVar[int]
    address: str
    answers: bool
    local: bool
    def __init__(self, address: _Optional[str] = ..., answers: bool = ..., local: bool = ...) -> None: ...

class ProbeHostReply(_message.Message):
    __slots__ = ("paths", "addresses")
    PATHS_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    paths: _containers.RepeatedCompositeFieldContainer[PathProbe]
    addresses: _containers.RepeatedCompositeFieldContainer[AddressProbe]
    def __init__(self, paths: _Optional[_Iterable[_Union[PathProbe, _Mapping]]] = ..., addresses: _Optional[_Iterable[_Union[AddressProbe, _Mapping]]] = ...) -> None: ...

class DigestRequest(_message.Message):
    __slots__ = ("module", "zone_size", "algorithm")
    MODULE_FIELD_NUMBER: _ClassVar[int]
    ZONE_SIZE_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    module: str
    zone_size: int
    algorithm: str
    def __init__(self, module: _Optional[str] = ..., zone_size: _Optional[int] = ..., algorithm: _Optional[str] = ...) -> None: ...

class FileDigest(_message.Message):
    __slots__ = ("directory", "path", "kind", "size", "mode", "uid", "gid", "target", "zone_hashes", "first_zone", "error")
    DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ZONE_HASHES_FIELD_NUMBER: _ClassVar[int]
    FIRST_ZONE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    directory: int
    path: str
    kind: str
    size: int
    mode: int
    uid: int
    gid: int
    target: str
    zone_hashes: _containers.RepeatedScalarFieldContainer[bytes]
    first_zone: int
    error: str
    def __init__(self, directory: _Optional[int] = ..., path: _Optional[str] = ..., kind: _Optional[str] = ..., size: _Optional[int] = ..., mode: _Optional[int] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ..., target: _Optional[str] = ..., zone_hashes: _Optional[_Iterable[bytes]] = ..., first_zone: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class DigestChunk(_message.Message):
    __slots__ = ("node_id", "algorithm", "zone_size", "files", "last", "state_note", "directories")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    ZONE_SIZE_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    STATE_NOTE_FIELD_NUMBER: _ClassVar[int]
    DIRECTORIES_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    algorithm: str
    zone_size: int
    files: _containers.RepeatedCompositeFieldContainer[FileDigest]
    last: bool
    state_note: str
    directories: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, node_id: _Optional[str] = ..., algorithm: _Optional[str] = ..., zone_size: _Optional[int] = ..., files: _Optional[_Iterable[_Union[FileDigest, _Mapping]]] = ..., last: bool = ..., state_note: _Optional[str] = ..., directories: _Optional[_Iterable[str]] = ...) -> None: ...

class NetworkAddress(_message.Message):
    __slots__ = ("interface", "address", "prefix_len")
    INTERFACE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PREFIX_LEN_FIELD_NUMBER: _ClassVar[int]
    interface: str
    address: str
    prefix_len: int
    def __init__(self, interface: _Optional[str] = ..., address: _Optional[str] = ..., prefix_len: _Optional[int] = ...) -> None: ...

class HostInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HostInfo(_message.Message):
    __slots__ = ("hostname", "version", "paired", "pairing_open", "cluster_name", "node_id", "fingerprint", "addresses", "config_version", "memory_bytes", "api_address", "protocol")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PAIRED_FIELD_NUMBER: _ClassVar[int]
    PAIRING_OPEN_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    CONFIG_VERSION_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    API_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    version: str
    paired: bool
    pairing_open: bool
    cluster_name: str
    node_id: str
    fingerprint: str
    addresses: _containers.RepeatedCompositeFieldContainer[NetworkAddress]
    config_version: int
    memory_bytes: int
    api_address: str
    protocol: str
    def __init__(self, hostname: _Optional[str] = ..., version: _Optional[str] = ..., paired: bool = ..., pairing_open: bool = ..., cluster_name: _Optional[str] = ..., node_id: _Optional[str] = ..., fingerprint: _Optional[str] = ..., addresses: _Optional[_Iterable[_Union[NetworkAddress, _Mapping]]] = ..., config_version: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., api_address: _Optional[str] = ..., protocol: _Optional[str] = ...) -> None: ...

class BeginPairingRequest(_message.Message):
    __slots__ = ("code", "node_id", "cluster_name", "ca_cert", "addresses")
    CODE_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    CA_CERT_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    code: str
    node_id: str
    cluster_name: str
    ca_cert: bytes
    addresses: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, code: _Optional[str] = ..., node_id: _Optional[str] = ..., cluster_name: _Optional[str] = ..., ca_cert: _Optional[bytes] = ..., addresses: _Optional[_Iterable[str]] = ...) -> None: ...

class BeginPairingReply(_message.Message):
    __slots__ = ("csr",)
    CSR_FIELD_NUMBER: _ClassVar[int]
    csr: bytes
    def __init__(self, csr: _Optional[bytes] = ...) -> None: ...

class CompletePairingRequest(_message.Message):
    __slots__ = ("code", "certificate")
    CODE_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    code: str
    certificate: bytes
    def __init__(self, code: _Optional[str] = ..., certificate: _Optional[bytes] = ...) -> None: ...

class CompletePairingReply(_message.Message):
    __slots__ = ("fingerprint",)
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    fingerprint: str
    def __init__(self, fingerprint: _Optional[str] = ...) -> None: ...
