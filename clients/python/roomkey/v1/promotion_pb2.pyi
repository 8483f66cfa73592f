from buf.validate import validate_pb2 as _validate_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
INTEGRATION_DIFF_KIND_DIFFERENT: IntegrationDiffKind
INTEGRATION_DIFF_KIND_ONLY_IN_FROM: IntegrationDiffKind
INTEGRATION_DIFF_KIND_ONLY_IN_TO: IntegrationDiffKind
INTEGRATION_DIFF_KIND_SAME: IntegrationDiffKind
INTEGRATION_DIFF_KIND_UNSPECIFIED: IntegrationDiffKind
PROMOTION_ACTION_CREATE: PromotionAction
PROMOTION_ACTION_UNCHANGED: PromotionAction
PROMOTION_ACTION_UNSPECIFIED: PromotionAction
PROMOTION_ACTION_UPDATE: PromotionAction

class DiffIntegrationsRequest(_message.Message):
    __slots__ = ["from_environment", "include_same", "page_size", "page_token"]
    FROM_ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_SAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    from_environment: str
    include_same: bool
    page_size: int
    page_token: str
    def __init__(self, from_environment: _Optional[str] = ..., include_same: bool = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class DiffIntegrationsResponse(_message.Message):
    __slots__ = ["integrations", "next_page_token"]
    INTEGRATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    integrations: _containers.RepeatedCompositeFieldContainer[IntegrationDiff]
    next_page_token: str
    def __init__(self, integrations: _Optional[_Iterable[_Union[IntegrationDiff, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class FieldDifference(_message.Message):
    __slots__ = ["field", "from_value", "secret", "to_value"]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    FROM_VALUE_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    TO_VALUE_FIELD_NUMBER: _ClassVar[int]
    field: str
    from_value: str
    secret: bool
    to_value: str
    def __init__(self, field: _Optional[str] = ..., from_value: _Optional[str] = ..., to_value: _Optional[str] = ..., secret: bool = ...) -> None: ...

class IntegrationDiff(_message.Message):
    __slots__ = ["fields", "kind", "name"]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    fields: _containers.RepeatedCompositeFieldContainer[FieldDifference]
    kind: IntegrationDiffKind
    name: str
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[IntegrationDiffKind, str]] = ..., fields: _Optional[_Iterable[_Union[FieldDifference, _Mapping]]] = ...) -> None: ...

class IntegrationPromotion(_message.Message):
    __slots__ = ["action", "changes", "name"]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    action: PromotionAction
    changes: _containers.RepeatedCompositeFieldContainer[FieldDifference]
    name: str
    def __init__(self, name: _Optional[str] = ..., action: _Optional[_Union[PromotionAction, str]] = ..., changes: _Optional[_Iterable[_Union[FieldDifference, _Mapping]]] = ...) -> None: ...

class PromoteIntegrationsRequest(_message.Message):
    __slots__ = ["all", "dry_run", "from_environment", "keep_target_fields", "names"]
    ALL_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    FROM_ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    KEEP_TARGET_FIELDS_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    all: bool
    dry_run: bool
    from_environment: str
    keep_target_fields: _field_mask_pb2.FieldMask
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, from_environment: _Optional[str] = ..., names: _Optional[_Iterable[str]] = ..., all: bool = ..., dry_run: bool = ..., keep_target_fields: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class PromoteIntegrationsResponse(_message.Message):
    __slots__ = ["dry_run", "promotions"]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    PROMOTIONS_FIELD_NUMBER: _ClassVar[int]
    dry_run: bool
    promotions: _containers.RepeatedCompositeFieldContainer[IntegrationPromotion]
    def __init__(self, promotions: _Optional[_Iterable[_Union[IntegrationPromotion, _Mapping]]] = ..., dry_run: bool = ...) -> None: ...

class IntegrationDiffKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class PromotionAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
