from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DataPlaneState(_message.Message):
    __slots__ = ("role", "mode", "hold_token", "history", "primary_since", "secondary_current", "mounts", "pid", "version", "spec_digest", "resync_active", "resync_done", "resync_total", "resync_rate", "resync_eta", "stream_bytes_sent", "repl_ops", "repl_bytes", "ack_latency_bounds_s", "ack_latency_counts", "ack_latency_sum_s", "held_writes", "phase", "seq", "started_at", "protocol_major", "protocol_minor")
    class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        NONE: _ClassVar[DataPlaneState.Role]
        PRIMARY: _ClassVar[DataPlaneState.Role]
        SECONDARY: _ClassVar[DataPlaneState.Role]
    NONE: DataPlaneState.Role
    PRIMARY: DataPlaneState.Role
    SECONDARY: DataPlaneState.Role
    ROLE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    HOLD_TOKEN_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_SINCE_FIELD_NUMBER: _ClassVar[int]
    SECONDARY_CURRENT_FIELD_NUMBER: _ClassVar[int]
    MOUNTS_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SPEC_DIGEST_FIELD_NUMBER: _ClassVar[int]
    RESYNC_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    RESYNC_DONE_FIELD_NUMBER: _ClassVar[int]
    RESYNC_TOTAL_FIELD_NUMBER: _ClassVar[int]
    RESYNC_RATE_FIELD_NUMBER: _ClassVar[int]
    RESYNC_ETA_FIELD_NUMBER: _ClassVar[int]
    STREAM_BYTES_SENT_FIELD_NUMBER: _ClassVar[int]
    REPL_OPS_FIELD_NUMBER: _ClassVar[int]
    REPL_BYTES_FIELD_NUMBER: _ClassVar[int]
    ACK_LATENCY_BOUNDS_S_FIELD_NUMBER: _ClassVar[int]
    ACK_LATENCY_COUNTS_FIELD_NUMBER: _ClassVar[int]
    ACK_LATENCY_SUM_S_FIELD_NUMBER: _ClassVar[int]
    HELD_WRITES_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_MAJOR_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_MINOR_FIELD_NUMBER: _ClassVar[int]
    role: DataPlaneState.Role
    mode: str
    hold_token: str
    history: _containers.RepeatedScalarFieldContainer[str]
    primary_since: float
    secondary_current: bool
    mounts: int
    pid: int
    version: str
    spec_digest: str
    resync_active: bool
    resync_done: int
    resync_total: int
    resync_rate: float
    resync_eta: float
    stream_bytes_sent: int
    repl_ops: int
    repl_bytes: int
    ack_latency_bounds_s: _containers.RepeatedScalarFieldContainer[float]
    ack_latency_counts: _containers.RepeatedScalarFieldContainer[int]
    ack_latency_sum_s: float
    held_writes: int
    phase: str
    seq: int
    started_at: float
    protocol_major: int
    protocol_minor: int
    def __init__(self, role: _Optional[_Union[DataPlaneState.Role, str]] = ..., mode: _Optional[str] = ..., hold_token: _Optional[str] = ..., history: _Optional[_Iterable[str]] = ..., primary_since: _Optional[float] = ..., secondary_current: bool = ..., mounts: _Optional[int] = ..., pid: _Optional[int] = ..., version: _Optional[str] = ..., spec_digest: _Optional[str] = ..., resync_active: bool = ..., resync_done: _Optional[int] = ..., resync_total: _Optional[int] = ..., resync_rate: _Optional[float] = ..., resync_eta: _Optional[float] = ..., stream_bytes_sent: _Optional[int] = ..., repl_ops: _Optional[int] = ..., repl_bytes: _Optional[int] = ..., ack_latency_bounds_s: _Optional[_Iterable[float]] = ..., ack_latency_counts: _Optional[_Iterable[int]] = ..., ack_latency_sum_s: _Optional[float] = ..., held_writes: _Optional[int] = ..., phase: _Optional[str] = ..., seq: _Optional[int] = ..., started_at: _Optional[float] = ..., protocol_major: _Optional[int] = ..., protocol_minor: _Optional[int] = ...) -> None: ...

class DataPlaneEvent(_message.Message):
    __slots__ = ("id", "degraded", "replicating", "resync_failed", "resync_done", "log", "state")
    ID_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    REPLICATING_FIELD_NUMBER: _ClassVar[int]
    RESYNC_FAILED_FIELD_NUMBER: _ClassVar[int]
    RESYNC_DONE_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    id: int
    degraded: Degraded
    replicating: Empty
    resync_failed: str
    resync_done: ResyncDone
    log: LogLine
    state: DataPlaneState
    def __init__(self, id: _Optional[int] = ..., degraded: _Optional[_Union[Degraded, _Mapping]] = ..., replicating: _Optional[_Union[Empty, _Mapping]] = ..., resync_failed: _Optional[str] = ..., resync_done: _Optional[_Union[ResyncDone, _Mapping]] = ..., log: _Optional[_Union[LogLine, _Mapping]] = ..., state: _Optional[_Union[DataPlaneState, _Mapping]] = ...) -> None: ...

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Degraded(_message.Message):
    __slots__ = ("reason", "hold", "requested")
    REASON_FIELD_NUMBER: _ClassVar[int]
    HOLD_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_FIELD_NUMBER: _ClassVar[int]
    reason: str
    hold: str
    requested: bool
    def __init__(self, reason: _Optional[str] = ..., hold: _Optional[str] = ..., requested: bool = ...) -> None: ...

class ResyncDone(_message.Message):
    __slots__ = ("generation", "history")
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    generation: str
    history: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, generation: _Optional[str] = ..., history: _Optional[_Iterable[str]] = ...) -> None: ...

class LogLine(_message.Message):
    __slots__ = ("level", "message", "time")
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    level: str
    message: str
    time: float
    def __init__(self, level: _Optional[str] = ..., message: _Optional[str] = ..., time: _Optional[float] = ...) -> None: ...

class BecomePrimaryRequest(_message.Message):
    __slots__ = ("generation", "history", "bound", "primary_since")
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    BOUND_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_SINCE_FIELD_NUMBER: _ClassVar[int]
    generation: str
    history: _containers.RepeatedScalarFieldContainer[str]
    bound: bool
    primary_since: float
    def __init__(self, generation: _Optional[str] = ..., history: _Optional[_Iterable[str]] = ..., bound: bool = ..., primary_since: _Optional[float] = ...) -> None: ...

class PeerIsSecondaryRequest(_message.Message):
    __slots__ = ("peer_latest_generation", "transient", "fullsync")
    PEER_LATEST_GENERATION_FIELD_NUMBER: _ClassVar[int]
    TRANSIENT_FIELD_NUMBER: _ClassVar[int]
    FULLSYNC_FIELD_NUMBER: _ClassVar[int]
    peer_latest_generation: str
    transient: bool
    fullsync: bool
    def __init__(self, peer_latest_generation: _Optional[str] = ..., transient: bool = ..., fullsync: bool = ...) -> None: ...

class GenerationRequest(_message.Message):
    __slots__ = ("generation", "history")
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    generation: str
    history: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, generation: _Optional[str] = ..., history: _Optional[_Iterable[str]] = ...) -> None: ...

class HistoryRequest(_message.Message):
    __slots__ = ("history",)
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    history: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, history: _Optional[_Iterable[str]] = ...) -> None: ...

class ResolveHoldRequest(_message.Message):
    __slots__ = ("hold", "gate_open")
    HOLD_FIELD_NUMBER: _ClassVar[int]
    GATE_OPEN_FIELD_NUMBER: _ClassVar[int]
    hold: str
    gate_open: bool
    def __init__(self, hold: _Optional[str] = ..., gate_open: bool = ...) -> None: ...

class QuarantineRequest(_message.Message):
    __slots__ = ("destination_root",)
    DESTINATION_ROOT_FIELD_NUMBER: _ClassVar[int]
    destination_root: str
    def __init__(self, destination_root: _Optional[str] = ...) -> None: ...

class QuarantineReply(_message.Message):
    __slots__ = ("destination",)
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    destination: str
    def __init__(self, destination: _Optional[str] = ...) -> None: ...

class EventsRequest(_message.Message):
    __slots__ = ("after_id",)
    AFTER_ID_FIELD_NUMBER: _ClassVar[int]
    after_id: int
    def __init__(self, after_id: _Optional[int] = ...) -> None: ...

class ShutdownRequest(_message.Message):
    __slots__ = ("unmount",)
    UNMOUNT_FIELD_NUMBER: _ClassVar[int]
    unmount: bool
    def __init__(self, unmount: bool = ...) -> None: ...
