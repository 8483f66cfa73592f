from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetMasterKeyStatusRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class GetMasterKeyStatusResponse(_message.Message):
    __slots__ = ["data_keys_on_old_keys", "keys"]
    DATA_KEYS_ON_OLD_KEYS_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    data_keys_on_old_keys: int
    keys: _containers.RepeatedCompositeFieldContainer[MasterKeyUsage]
    def __init__(self, keys: _Optional[_Iterable[_Union[MasterKeyUsage, _Mapping]]] = ..., data_keys_on_old_keys: _Optional[int] = ...) -> None: ...

class MasterKeyUsage(_message.Message):
    __slots__ = ["configured", "current", "data_keys", "environments", "fingerprint", "id"]
    CONFIGURED_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    DATA_KEYS_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENTS_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    configured: bool
    current: bool
    data_keys: int
    environments: _containers.RepeatedScalarFieldContainer[str]
    fingerprint: str
    id: str
    def __init__(self, id: _Optional[str] = ..., fingerprint: _Optional[str] = ..., current: bool = ..., configured: bool = ..., data_keys: _Optional[int] = ..., environments: _Optional[_Iterable[str]] = ...) -> None: ...

class RewrapDataKeysRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class RewrapDataKeysResponse(_message.Message):
    __slots__ = ["queued_environments"]
    QUEUED_ENVIRONMENTS_FIELD_NUMBER: _ClassVar[int]
    queued_environments: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, queued_environments: _Optional[_Iterable[str]] = ...) -> None: ...
