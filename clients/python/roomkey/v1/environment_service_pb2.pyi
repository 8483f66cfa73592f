from buf.validate import validate_pb2 as _validate_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from roomkey.v1 import audit_pb2 as _audit_pb2
from roomkey.v1 import common_pb2 as _common_pb2
from roomkey.v1 import master_keys_pb2 as _master_keys_pb2
from roomkey.v1 import promotion_pb2 as _promotion_pb2
from roomkey.v1 import webhooks_pb2 as _webhooks_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

CLIENT_AUTH_METHOD_CLIENT_SECRET_BASIC: ClientAuthMethod
CLIENT_AUTH_METHOD_CLIENT_SECRET_POST: ClientAuthMethod
CLIENT_AUTH_METHOD_UNSPECIFIED: ClientAuthMethod
CREDENTIAL_PLACEMENT_BASIC: CredentialPlacement
CREDENTIAL_PLACEMENT_BEARER: CredentialPlacement
CREDENTIAL_PLACEMENT_HEADER: CredentialPlacement
CREDENTIAL_PLACEMENT_QUERY: CredentialPlacement
CREDENTIAL_PLACEMENT_UNSPECIFIED: CredentialPlacement
DESCRIPTOR: _descriptor.FileDescriptor

class CreateEnvironmentRequest(_message.Message):
    __slots__ = ["description", "display_name", "settings"]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    description: str
    display_name: str
    settings: EnvironmentSettings
    def __init__(self, display_name: _Optional[str] = ..., description: _Optional[str] = ..., settings: _Optional[_Union[EnvironmentSettings, _Mapping]] = ...) -> None: ...

class CreateEnvironmentResponse(_message.Message):
    __slots__ = ["environment"]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    environment: Environment
    def __init__(self, environment: _Optional[_Union[Environment, _Mapping]] = ...) -> None: ...

class CreateWebhookEndpointRequest(_message.Message):
    __slots__ = ["endpoint"]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    endpoint: _webhooks_pb2.WebhookEndpoint
    def __init__(self, endpoint: _Optional[_Union[_webhooks_pb2.WebhookEndpoint, _Mapping]] = ...) -> None: ...

class CreateWebhookEndpointResponse(_message.Message):
    __slots__ = ["endpoint", "signing_secret"]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    SIGNING_SECRET_FIELD_NUMBER: _ClassVar[int]
    endpoint: _webhooks_pb2.WebhookEndpoint
    signing_secret: str
    def __init__(self, endpoint: _Optional[_Union[_webhooks_pb2.WebhookEndpoint, _Mapping]] = ..., signing_secret: _Optional[str] = ...) -> None: ...

class CredentialCheck(_message.Message):
    __slots__ = ["account_id_path", "account_name_path", "method", "parameter_name", "placement", "url"]
    ACCOUNT_ID_PATH_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_NAME_PATH_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_NAME_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    account_id_path: str
    account_name_path: str
    method: str
    parameter_name: str
    placement: CredentialPlacement
    url: str
    def __init__(self, url: _Optional[str] = ..., method: _Optional[str] = ..., placement: _Optional[_Union[CredentialPlacement, str]] = ..., parameter_name: _Optional[str] = ..., account_id_path: _Optional[str] = ..., account_name_path: _Optional[str] = ...) -> None: ...

class DeleteEnvironmentRequest(_message.Message):
    __slots__ = ["force"]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    force: bool
    def __init__(self, force: bool = ...) -> None: ...

class DeleteEnvironmentResponse(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class DeleteIntegrationRequest(_message.Message):
    __slots__ = ["force", "name"]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    force: bool
    name: str
    def __init__(self, name: _Optional[str] = ..., force: bool = ...) -> None: ...

class DeleteIntegrationResponse(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class DeleteWebhookEndpointRequest(_message.Message):
    __slots__ = ["id"]
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteWebhookEndpointResponse(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class Environment(_message.Message):
    __slots__ = ["built_in", "create_time", "description", "display_name", "name", "settings", "update_time"]
    BUILT_IN_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    built_in: bool
    create_time: _timestamp_pb2.Timestamp
    description: str
    display_name: str
    name: str
    settings: EnvironmentSettings
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., description: _Optional[str] = ..., settings: _Optional[_Union[EnvironmentSettings, _Mapping]] = ..., built_in: bool = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EnvironmentSettings(_message.Message):
    __slots__ = ["audit_retention", "default_token_lifetime", "oauth_refresh_margin", "refresh_token_keepalive", "token_retention"]
    AUDIT_RETENTION_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_TOKEN_LIFETIME_FIELD_NUMBER: _ClassVar[int]
    OAUTH_REFRESH_MARGIN_FIELD_NUMBER: _ClassVar[int]
    REFRESH_TOKEN_KEEPALIVE_FIELD_NUMBER: _ClassVar[int]
    TOKEN_RETENTION_FIELD_NUMBER: _ClassVar[int]
    audit_retention: _duration_pb2.Duration
    default_token_lifetime: _duration_pb2.Duration
    oauth_refresh_margin: _duration_pb2.Duration
    refresh_token_keepalive: _duration_pb2.Duration
    token_retention: _duration_pb2.Duration
    def __init__(self, default_token_lifetime: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., oauth_refresh_margin: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., refresh_token_keepalive: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., token_retention: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., audit_retention: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class GetEnvironmentRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class GetEnvironmentResponse(_message.Message):
    __slots__ = ["environment"]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    environment: Environment
    def __init__(self, environment: _Optional[_Union[Environment, _Mapping]] = ...) -> None: ...

class GetIntegrationRequest(_message.Message):
    __slots__ = ["name"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetIntegrationResponse(_message.Message):
    __slots__ = ["integration"]
    INTEGRATION_FIELD_NUMBER: _ClassVar[int]
    integration: Integration
    def __init__(self, integration: _Optional[_Union[Integration, _Mapping]] = ...) -> None: ...

class GetWebhookEndpointRequest(_message.Message):
    __slots__ = ["id"]
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetWebhookEndpointResponse(_message.Message):
    __slots__ = ["endpoint"]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    endpoint: _webhooks_pb2.WebhookEndpoint
    def __init__(self, endpoint: _Optional[_Union[_webhooks_pb2.WebhookEndpoint, _Mapping]] = ...) -> None: ...

class Integration(_message.Message):
    __slots__ = ["auth_type", "create_time", "credential_check", "display_name", "name", "oauth2", "update_time"]
    AUTH_TYPE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_CHECK_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    OAUTH2_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    auth_type: _common_pb2.AuthType
    create_time: _timestamp_pb2.Timestamp
    credential_check: CredentialCheck
    display_name: str
    name: str
    oauth2: OAuth2Config
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., auth_type: _Optional[_Union[_common_pb2.AuthType, str]] = ..., oauth2: _Optional[_Union[OAuth2Config, _Mapping]] = ..., credential_check: _Optional[_Union[CredentialCheck, _Mapping]] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListEnvironmentsRequest(_message.Message):
    __slots__ = ["page_size", "page_token"]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListEnvironmentsResponse(_message.Message):
    __slots__ = ["environments", "next_page_token"]
    ENVIRONMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    environments: _containers.RepeatedCompositeFieldContainer[Environment]
    next_page_token: str
    def __init__(self, environments: _Optional[_Iterable[_Union[Environment, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListIntegrationsRequest(_message.Message):
    __slots__ = ["page_size", "page_token"]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListIntegrationsResponse(_message.Message):
    __slots__ = ["integrations", "next_page_token"]
    INTEGRATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    integrations: _containers.RepeatedCompositeFieldContainer[Integration]
    next_page_token: str
    def __init__(self, integrations: _Optional[_Iterable[_Union[Integration, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListWebhookDeliveriesRequest(_message.Message):
    __slots__ = ["endpoint_id", "event_id", "page_size", "page_token", "status"]
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    event_id: str
    page_size: int
    page_token: str
    status: _webhooks_pb2.WebhookDeliveryStatus
    def __init__(self, endpoint_id: _Optional[str] = ..., event_id: _Optional[str] = ..., status: _Optional[_Union[_webhooks_pb2.WebhookDeliveryStatus, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWebhookDeliveriesResponse(_message.Message):
    __slots__ = ["deliveries", "next_page_token"]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[_webhooks_pb2.WebhookDelivery]
    next_page_token: str
    def __init__(self, deliveries: _Optional[_Iterable[_Union[_webhooks_pb2.WebhookDelivery, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListWebhookEndpointsRequest(_message.Message):
    __slots__ = ["page_size", "page_token"]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWebhookEndpointsResponse(_message.Message):
    __slots__ = ["endpoints", "next_page_token"]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    endpoints: _containers.RepeatedCompositeFieldContainer[_webhooks_pb2.WebhookEndpoint]
    next_page_token: str
    def __init__(self, endpoints: _Optional[_Iterable[_Union[_webhooks_pb2.WebhookEndpoint, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class OAuth2Config(_message.Message):
    __slots__ = ["authorization_params", "authorization_url", "client_auth_method", "client_id", "client_secret", "client_secret_set", "disable_pkce", "issuer", "pkce", "revocation_url", "scope_separator", "scopes", "token_url"]
    class AuthorizationParamsEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    AUTHORIZATION_PARAMS_FIELD_NUMBER: _ClassVar[int]
    AUTHORIZATION_URL_FIELD_NUMBER: _ClassVar[int]
    CLIENT_AUTH_METHOD_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SECRET_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SECRET_SET_FIELD_NUMBER: _ClassVar[int]
    DISABLE_PKCE_FIELD_NUMBER: _ClassVar[int]
    ISSUER_FIELD_NUMBER: _ClassVar[int]
    PKCE_FIELD_NUMBER: _ClassVar[int]
    REVOCATION_URL_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    SCOPE_SEPARATOR_FIELD_NUMBER: _ClassVar[int]
    TOKEN_URL_FIELD_NUMBER: _ClassVar[int]
    authorization_params: _containers.ScalarMap[str, str]
    authorization_url: str
    client_auth_method: ClientAuthMethod
    client_id: str
    client_secret: str
    client_secret_set: bool
    disable_pkce: bool
    issuer: str
    pkce: bool
    revocation_url: str
    scope_separator: str
    scopes: _containers.RepeatedScalarFieldContainer[str]
    token_url: str
    def __init__(self, authorization_url: _Optional[str] = ..., token_url: _Optional[str] = ..., client_id: _Optional[str] = ..., client_secret: _Optional[str] = ..., client_secret_set: bool = ..., scopes: _Optional[_Iterable[str]] = ..., pkce: bool = ..., client_auth_method: _Optional[_Union[ClientAuthMethod, str]] = ..., authorization_params: _Optional[_Mapping[str, str]] = ..., scope_separator: _Optional[str] = ..., issuer: _Optional[str] = ..., disable_pkce: bool = ..., revocation_url: _Optional[str] = ...) -> None: ...

class PutIntegrationRequest(_message.Message):
    __slots__ = ["integration"]
    INTEGRATION_FIELD_NUMBER: _ClassVar[int]
    integration: Integration
    def __init__(self, integration: _Optional[_Union[Integration, _Mapping]] = ...) -> None: ...

class PutIntegrationResponse(_message.Message):
    __slots__ = ["created", "integration"]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    INTEGRATION_FIELD_NUMBER: _ClassVar[int]
    created: bool
    integration: Integration
    def __init__(self, integration: _Optional[_Union[Integration, _Mapping]] = ..., created: bool = ...) -> None: ...

class RedeliverWebhookEventRequest(_message.Message):
    __slots__ = ["endpoint_id", "event_id"]
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    event_id: str
    def __init__(self, event_id: _Optional[str] = ..., endpoint_id: _Optional[str] = ...) -> None: ...

class RedeliverWebhookEventResponse(_message.Message):
    __slots__ = ["deliveries"]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[_webhooks_pb2.WebhookDelivery]
    def __init__(self, deliveries: _Optional[_Iterable[_Union[_webhooks_pb2.WebhookDelivery, _Mapping]]] = ...) -> None: ...

class RotateWebhookEndpointSecretRequest(_message.Message):
    __slots__ = ["id", "overlap"]
    ID_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    id: str
    overlap: _duration_pb2.Duration
    def __init__(self, id: _Optional[str] = ..., overlap: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class RotateWebhookEndpointSecretResponse(_message.Message):
    __slots__ = ["endpoint", "signing_secret"]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    SIGNING_SECRET_FIELD_NUMBER: _ClassVar[int]
    endpoint: _webhooks_pb2.WebhookEndpoint
    signing_secret: str
    def __init__(self, endpoint: _Optional[_Union[_webhooks_pb2.WebhookEndpoint, _Mapping]] = ..., signing_secret: _Optional[str] = ...) -> None: ...

class UpdateEnvironmentRequest(_message.Message):
    __slots__ = ["environment", "update_mask"]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    environment: Environment
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, environment: _Optional[_Union[Environment, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateEnvironmentResponse(_message.Message):
    __slots__ = ["environment"]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    environment: Environment
    def __init__(self, environment: _Optional[_Union[Environment, _Mapping]] = ...) -> None: ...

class UpdateWebhookEndpointRequest(_message.Message):
    __slots__ = ["endpoint", "update_mask"]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    endpoint: _webhooks_pb2.WebhookEndpoint
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, endpoint: _Optional[_Union[_webhooks_pb2.WebhookEndpoint, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateWebhookEndpointResponse(_message.Message):
    __slots__ = ["endpoint"]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    endpoint: _webhooks_pb2.WebhookEndpoint
    def __init__(self, endpoint: _Optional[_Union[_webhooks_pb2.WebhookEndpoint, _Mapping]] = ...) -> None: ...

class ClientAuthMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class CredentialPlacement(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
