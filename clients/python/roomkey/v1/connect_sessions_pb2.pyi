from buf.validate import validate_pb2 as _validate_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from roomkey.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

CONNECT_SESSION_STATUS_EXPIRED: ConnectSessionStatus
CONNECT_SESSION_STATUS_OPEN: ConnectSessionStatus
CONNECT_SESSION_STATUS_REVOKED: ConnectSessionStatus
CONNECT_SESSION_STATUS_SPENT: ConnectSessionStatus
CONNECT_SESSION_STATUS_UNSPECIFIED: ConnectSessionStatus
DESCRIPTOR: _descriptor.FileDescriptor

class ConnectIntegration(_message.Message):
    __slots__ = ["auth_type", "display_name", "name"]
    AUTH_TYPE_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    auth_type: _common_pb2.AuthType
    display_name: str
    name: str
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., auth_type: _Optional[_Union[_common_pb2.AuthType, str]] = ...) -> None: ...

class ConnectSession(_message.Message):
    __slots__ = ["account_id", "allowed_origins", "create_time", "display_prefix", "end_user", "expire_time", "id", "integrations", "labels", "reauthorize", "return_url", "revoke_time", "spend_time", "status", "tenant_id"]
    class LabelsEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_ORIGINS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_PREFIX_FIELD_NUMBER: _ClassVar[int]
    END_USER_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    INTEGRATIONS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    REAUTHORIZE_FIELD_NUMBER: _ClassVar[int]
    RETURN_URL_FIELD_NUMBER: _ClassVar[int]
    REVOKE_TIME_FIELD_NUMBER: _ClassVar[int]
    SPEND_TIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    allowed_origins: _containers.RepeatedScalarFieldContainer[str]
    create_time: _timestamp_pb2.Timestamp
    display_prefix: str
    end_user: EndUser
    expire_time: _timestamp_pb2.Timestamp
    id: str
    integrations: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.ScalarMap[str, str]
    reauthorize: bool
    return_url: str
    revoke_time: _timestamp_pb2.Timestamp
    spend_time: _timestamp_pb2.Timestamp
    status: ConnectSessionStatus
    tenant_id: str
    def __init__(self, id: _Optional[str] = ..., end_user: _Optional[_Union[EndUser, _Mapping]] = ..., tenant_id: _Optional[str] = ..., integrations: _Optional[_Iterable[str]] = ..., account_id: _Optional[str] = ..., reauthorize: bool = ..., allowed_origins: _Optional[_Iterable[str]] = ..., return_url: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., status: _Optional[_Union[ConnectSessionStatus, str]] = ..., display_prefix: _Optional[str] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., spend_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., revoke_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateConnectSessionRequest(_message.Message):
    __slots__ = ["account_id", "allowed_origins", "end_user", "integrations", "labels", "lifetime", "return_url", "tenant_id"]
    class LabelsEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_ORIGINS_FIELD_NUMBER: _ClassVar[int]
    END_USER_FIELD_NUMBER: _ClassVar[int]
    INTEGRATIONS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    LIFETIME_FIELD_NUMBER: _ClassVar[int]
    RETURN_URL_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    allowed_origins: _containers.RepeatedScalarFieldContainer[str]
    end_user: EndUser
    integrations: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.ScalarMap[str, str]
    lifetime: _duration_pb2.Duration
    return_url: str
    tenant_id: str
    def __init__(self, end_user: _Optional[_Union[EndUser, _Mapping]] = ..., tenant_id: _Optional[str] = ..., integrations: _Optional[_Iterable[str]] = ..., account_id: _Optional[str] = ..., lifetime: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., allowed_origins: _Optional[_Iterable[str]] = ..., return_url: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CreateConnectSessionResponse(_message.Message):
    __slots__ = ["connect_url", "secret", "session"]
    CONNECT_URL_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    connect_url: str
    secret: str
    session: ConnectSession
    def __init__(self, session: _Optional[_Union[ConnectSession, _Mapping]] = ..., secret: _Optional[str] = ..., connect_url: _Optional[str] = ...) -> None: ...

class EndUser(_message.Message):
    __slots__ = ["display_name", "email", "id", "tags"]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    display_name: str
    email: str
    id: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., display_name: _Optional[str] = ..., email: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class GetConnectSessionRequest(_message.Message):
    __slots__ = ["id"]
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetConnectSessionResponse(_message.Message):
    __slots__ = ["integrations", "session"]
    INTEGRATIONS_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    integrations: _containers.RepeatedCompositeFieldContainer[ConnectIntegration]
    session: ConnectSession
    def __init__(self, session: _Optional[_Union[ConnectSession, _Mapping]] = ..., integrations: _Optional[_Iterable[_Union[ConnectIntegration, _Mapping]]] = ...) -> None: ...

class RevokeConnectSessionRequest(_message.Message):
    __slots__ = ["id"]
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RevokeConnectSessionResponse(_message.Message):
    __slots__ = ["session"]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: ConnectSession
    def __init__(self, session: _Optional[_Union[ConnectSession, _Mapping]] = ...) -> None: ...

class ConnectSessionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
