from protos import mirrorpair_pb2 as _mirrorpair_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PeerModuleView(_message.Message):
    __slots__ = ("name", "state", "readiness", "uptodate", "generations", "primary_since", "handover", "swap_request", "split_brain", "stop_request", "config_version", "candidate", "resource_up", "fullsync", "outdate", "outdated", "kept_over", "history_length", "history_digest", "history_latest", "history_offset", "peer_history_digest")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    READINESS_FIELD_NUMBER: _ClassVar[int]
    UPTODATE_FIELD_NUMBER: _ClassVar[int]
    GENERATIONS_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_SINCE_FIELD_NUMBER: _ClassVar[int]
    HANDOVER_FIELD_NUMBER: _ClassVar[int]
    SWAP_REQUEST_FIELD_NUMBER: _ClassVar[int]
    SPLIT_BRAIN_FIELD_NUMBER: _ClassVar[int]
    STOP_REQUEST_FIELD_NUMBER: _ClassVar[int]
    CONFIG_VERSION_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_UP_FIELD_NUMBER: _ClassVar[int]
    FULLSYNC_FIELD_NUMBER: _ClassVar[int]
    OUTDATE_FIELD_NUMBER: _ClassVar[int]
    OUTDATED_FIELD_NUMBER: _ClassVar[int]
    KEPT_OVER_FIELD_NUMBER: _ClassVar[int]
    HISTORY_LENGTH_FIELD_NUMBER: _ClassVar[int]
    HISTORY_DIGEST_FIELD_NUMBER: _ClassVar[int]
    HISTORY_LATEST_FIELD_NUMBER: _ClassVar[int]
    HISTORY_OFFSET_FIELD_NUMBER: _ClassVar[int]
    PEER_HISTORY_DIGEST_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: _mirrorpair_pb2.ModuleState
    readiness: _mirrorpair_pb2.Readiness
    uptodate: bool
    generations: _containers.RepeatedScalarFieldContainer[str]
    primary_since: float
    handover: bool
    swap_request: bool
    split_brain: bool
    stop_request: bool
    config_version: int
    candidate: bool
    resource_up: bool
    fullsync: bool
    outdate: str
    outdated: str
    kept_over: str
    history_length: int
    history_digest: bytes
    history_latest: str
    history_offset: int
    peer_history_digest: bytes
    def __init__(self, name: _Optional[str] = ..., state: _Optional[_Union[_mirrorpair_pb2.ModuleState, str]] = ..., readiness: _Optional[_Union[_mirrorpair_pb2.Readiness, str]] = ..., uptodate: bool = ..., generations: _Optional[_Iterable[str]] = ..., primary_since: _Optional[float] = ..., handover: bool = ..., swap_request: bool = ..., split_brain: bool = ..., stop_request: bool = ..., config_version: _Optional[int] = ..., candidate: bool = ..., resource_up: bool = ..., fullsync: bool = ..., outdate: _Optional[str] = ..., outdated: _Optional[str] = ..., kept_over: _Optional[str] = ..., history_length: _Optional[int] = ..., history_digest: _Optional[bytes] = ..., history_latest: _Optional[str] = ..., history_offset: _Optional[int] = ..., peer_history_digest: _Optional[bytes] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("cluster", "node_id", "boot_id", "seq", "link", "sent_time", "modules", "witness_reachable", "echo_boot_id", "config_version", "part", "parts", "features", "protocol_major", "protocol_minor", "agent_version", "leaving_ms")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    BOOT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    SENT_TIME_FIELD_NUMBER: _ClassVar[int]
    MODULES_FIELD_NUMBER: _ClassVar[int]
    WITNESS_REACHABLE_FIELD_NUMBER: _ClassVar[int]
    ECHO_BOOT_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_VERSION_FIELD_NUMBER: _ClassVar[int]
    PART_FIELD_NUMBER: _ClassVar[int]
    PARTS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_MAJOR_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_MINOR_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    LEAVING_MS_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    node_id: str
    boot_id: int
    seq: int
    link: str
    sent_time: float
    modules: _containers.RepeatedCompositeFieldContainer[PeerModuleView]
    witness_reachable: bool
    echo_boot_id: int
    config_version: int
    part: int
    parts: int
    features: int
    protocol_major: int
    protocol_minor: int
    agent_version: str
    leaving_ms: int
    def __init__(self, cluster: _Optional[str] = ..., node_id: _Optional[str] = ..., boot_id: _Optional[int] = ..., seq: _Optional[int] = ..., link: _Optional[str] = ..., sent_time: _Optional[float] = ..., modules: _Optional[_Iterable[_Union[PeerModuleView, _Mapping]]] = ..., witness_reachable: bool = ..., echo_boot_id: _Optional[int] = ..., config_version: _Optional[int] = ..., part: _Optional[int] = ..., parts: _Optional[int] = ..., features: _Optional[int] = ..., protocol_major: _Optional[int] = ..., protocol_minor: _Optional[int] = ..., agent_version: _Optional[str] = ..., leaving_ms: _Optional[int] = ...) -> None: ...
