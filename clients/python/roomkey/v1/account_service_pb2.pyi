from buf.validate import validate_pb2 as _validate_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from roomkey.v1 import common_pb2 as _common_pb2
from roomkey.v1 import connect_sessions_pb2 as _connect_sessions_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

ACCOUNT_STATUS_ACTIVE: AccountStatus
ACCOUNT_STATUS_CONNECTING: AccountStatus
ACCOUNT_STATUS_DISCONNECTED: AccountStatus
ACCOUNT_STATUS_FAILED: AccountStatus
ACCOUNT_STATUS_NEEDS_REAUTH: AccountStatus
ACCOUNT_STATUS_UNSPECIFIED: AccountStatus
DESCRIPTOR: _descriptor.FileDescriptor
UPSTREAM_REVOCATION_STATUS_DONE: UpstreamRevocationStatus
UPSTREAM_REVOCATION_STATUS_FAILED: UpstreamRevocationStatus
UPSTREAM_REVOCATION_STATUS_PENDING: UpstreamRevocationStatus
UPSTREAM_REVOCATION_STATUS_UNSPECIFIED: UpstreamRevocationStatus

class Account(_message.Message):
    __slots__ = ["auth_type", "create_time", "credentials_expire_time", "end_user", "id", "integration", "labels", "last_refresh_time", "reauthorization_failed", "remote_id", "remote_name", "status", "status_reason", "tenant_id", "update_time", "upstream_revocation"]
    class LabelsEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    AUTH_TYPE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    END_USER_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    INTEGRATION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    LAST_REFRESH_TIME_FIELD_NUMBER: _ClassVar[int]
    REAUTHORIZATION_FAILED_FIELD_NUMBER: _ClassVar[int]
    REMOTE_ID_FIELD_NUMBER: _ClassVar[int]
    REMOTE_NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_REASON_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_REVOCATION_FIELD_NUMBER: _ClassVar[int]
    auth_type: _common_pb2.AuthType
    create_time: _timestamp_pb2.Timestamp
    credentials_expire_time: _timestamp_pb2.Timestamp
    end_user: _connect_sessions_pb2.EndUser
    id: str
    integration: str
    labels: _containers.ScalarMap[str, str]
    last_refresh_time: _timestamp_pb2.Timestamp
    reauthorization_failed: bool
    remote_id: str
    remote_name: str
    status: AccountStatus
    status_reason: str
    tenant_id: str
    update_time: _timestamp_pb2.Timestamp
    upstream_revocation: UpstreamRevocation
    def __init__(self, id: _Optional[str] = ..., integration: _Optional[str] = ..., tenant_id: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., status: _Optional[_Union[AccountStatus, str]] = ..., status_reason: _Optional[str] = ..., auth_type: _Optional[_Union[_common_pb2.AuthType, str]] = ..., remote_id: _Optional[str] = ..., remote_name: _Optional[str] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., credentials_expire_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., last_refresh_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., end_user: _Optional[_Union[_connect_sessions_pb2.EndUser, _Mapping]] = ..., upstream_revocation: _Optional[_Union[UpstreamRevocation, _Mapping]] = ..., reauthorization_failed: bool = ...) -> None: ...

class ApiKeyCredential(_message.Message):
    __slots__ = ["key"]
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class BasicCredential(_message.Message):
    __slots__ = ["password", "username"]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    password: str
    username: str
    def __init__(self, username: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class CompleteOAuthConnectionRequest(_message.Message):
    __slots__ = ["code", "iss", "state"]
    CODE_FIELD_NUMBER: _ClassVar[int]
    ISS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    code: str
    iss: str
    state: str
    def __init__(self, state: _Optional[str] = ..., code: _Optional[str] = ..., iss: _Optional[str] = ...) -> None: ...

class CompleteOAuthConnectionResponse(_message.Message):
    __slots__ = ["account"]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: Account
    def __init__(self, account: _Optional[_Union[Account, _Mapping]] = ...) -> None: ...

class ConnectAccountRequest(_message.Message):
    __slots__ = ["account_id", "api_key", "basic", "end_user", "idempotency_key", "integration", "labels", "tenant_id"]
    class LabelsEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    BASIC_FIELD_NUMBER: _ClassVar[int]
    END_USER_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    INTEGRATION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    api_key: ApiKeyCredential
    basic: BasicCredential
    end_user: _connect_sessions_pb2.EndUser
    idempotency_key: str
    integration: str
    labels: _containers.ScalarMap[str, str]
    tenant_id: str
    def __init__(self, integration: _Optional[str] = ..., tenant_id: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., api_key: _Optional[_Union[ApiKeyCredential, _Mapping]] = ..., basic: _Optional[_Union[BasicCredential, _Mapping]] = ..., idempotency_key: _Optional[str] = ..., end_user: _Optional[_Union[_connect_sessions_pb2.EndUser, _Mapping]] = ..., account_id: _Optional[str] = ...) -> None: ...

class ConnectAccountResponse(_message.Message):
    __slots__ = ["account"]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: Account
    def __init__(self, account: _Optional[_Union[Account, _Mapping]] = ...) -> None: ...

class DeleteAccountRequest(_message.Message):
    __slots__ = ["id"]
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteAccountResponse(_message.Message):
    __slots__ = ["account"]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: Account
    def __init__(self, account: _Optional[_Union[Account, _Mapping]] = ...) -> None: ...

class GetAccountCredentialsRequest(_message.Message):
    __slots__ = ["id"]
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetAccountCredentialsResponse(_message.Message):
    __slots__ = ["account_id", "api_key", "basic", "oauth2"]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    BASIC_FIELD_NUMBER: _ClassVar[int]
    OAUTH2_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    api_key: ApiKeyCredential
    basic: BasicCredential
    oauth2: OAuth2Credential
    def __init__(self, account_id: _Optional[str] = ..., api_key: _Optional[_Union[ApiKeyCredential, _Mapping]] = ..., basic: _Optional[_Union[BasicCredential, _Mapping]] = ..., oauth2: _Optional[_Union[OAuth2Credential, _Mapping]] = ...) -> None: ...

class GetAccountRequest(_message.Message):
    __slots__ = ["id"]
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetAccountResponse(_message.Message):
    __slots__ = ["account"]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: Account
    def __init__(self, account: _Optional[_Union[Account, _Mapping]] = ...) -> None: ...

class ListAccountsRequest(_message.Message):
    __slots__ = ["end_user_id", "end_user_tag", "integration", "page_size", "page_token", "status", "tenant_id"]
    END_USER_ID_FIELD_NUMBER: _ClassVar[int]
    END_USER_TAG_FIELD_NUMBER: _ClassVar[int]
    INTEGRATION_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    end_user_id: str
    end_user_tag: str
    integration: str
    page_size: int
    page_token: str
    status: AccountStatus
    tenant_id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., integration: _Optional[str] = ..., status: _Optional[_Union[AccountStatus, str]] = ..., tenant_id: _Optional[str] = ..., end_user_id: _Optional[str] = ..., end_user_tag: _Optional[str] = ...) -> None: ...

class ListAccountsResponse(_message.Message):
    __slots__ = ["accounts", "next_page_token"]
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    accounts: _containers.RepeatedCompositeFieldContainer[Account]
    next_page_token: str
    def __init__(self, accounts: _Optional[_Iterable[_Union[Account, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class OAuth2Credential(_message.Message):
    __slots__ = ["access_token", "expire_time", "scopes", "token_type"]
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    TOKEN_TYPE_FIELD_NUMBER: _ClassVar[int]
    access_token: str
    expire_time: _timestamp_pb2.Timestamp
    scopes: _containers.RepeatedScalarFieldContainer[str]
    token_type: str
    def __init__(self, access_token: _Optional[str] = ..., token_type: _Optional[str] = ..., expire_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., scopes: _Optional[_Iterable[str]] = ...) -> None: ...

class RefreshAccountCredentialsRequest(_message.Message):
    __slots__ = ["id"]
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RefreshAccountCredentialsResponse(_message.Message):
    __slots__ = ["account"]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: Account
    def __init__(self, account: _Optional[_Union[Account, _Mapping]] = ...) -> None: ...

class StartOAuthConnectionRequest(_message.Message):
    __slots__ = ["account_id", "end_user", "integration", "labels", "redirect_uri", "tenant_id"]
    class LabelsEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    END_USER_FIELD_NUMBER: _ClassVar[int]
    INTEGRATION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    REDIRECT_URI_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    end_user: _connect_sessions_pb2.EndUser
    integration: str
    labels: _containers.ScalarMap[str, str]
    redirect_uri: str
    tenant_id: str
    def __init__(self, integration: _Optional[str] = ..., tenant_id: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., redirect_uri: _Optional[str] = ..., account_id: _Optional[str] = ..., end_user: _Optional[_Union[_connect_sessions_pb2.EndUser, _Mapping]] = ...) -> None: ...

class StartOAuthConnectionResponse(_message.Message):
    __slots__ = ["authorization_url", "state", "state_expire_time"]
    AUTHORIZATION_URL_FIELD_NUMBER: _ClassVar[int]
    STATE_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    authorization_url: str
    state: str
    state_expire_time: _timestamp_pb2.Timestamp
    def __init__(self, authorization_url: _Optional[str] = ..., state: _Optional[str] = ..., state_expire_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UpdateAccountRequest(_message.Message):
    __slots__ = ["account", "update_mask"]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    account: Account
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, account: _Optional[_Union[Account, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateAccountResponse(_message.Message):
    __slots__ = ["account"]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: Account
    def __init__(self, account: _Optional[_Union[Account, _Mapping]] = ...) -> None: ...

class UpstreamRevocation(_message.Message):
    __slots__ = ["attempts", "last_error", "status", "update_time"]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    attempts: int
    last_error: str
    status: UpstreamRevocationStatus
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, status: _Optional[_Union[UpstreamRevocationStatus, str]] = ..., attempts: _Optional[int] = ..., last_error: _Optional[str] = ..., update_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WatchAccountsRequest(_message.Message):
    __slots__ = ["account_ids", "end_user_id", "integration", "tenant_id"]
    ACCOUNT_IDS_FIELD_NUMBER: _ClassVar[int]
    END_USER_ID_FIELD_NUMBER: _ClassVar[int]
    INTEGRATION_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    account_ids: _containers.RepeatedScalarFieldContainer[str]
    end_user_id: str
    integration: str
    tenant_id: str
    def __init__(self, integration: _Optional[str] = ..., tenant_id: _Optional[str] = ..., end_user_id: _Optional[str] = ..., account_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class WatchAccountsResponse(_message.Message):
    __slots__ = ["account", "event_time", "previous_status"]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATUS_FIELD_NUMBER: _ClassVar[int]
    account: Account
    event_time: _timestamp_pb2.Timestamp
    previous_status: AccountStatus
    def __init__(self, account: _Optional[_Union[Account, _Mapping]] = ..., previous_status: _Optional[_Union[AccountStatus, str]] = ..., event_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AccountStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class UpstreamRevocationStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
