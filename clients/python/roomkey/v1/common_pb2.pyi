from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

AUTH_TYPE_API_KEY: AuthType
AUTH_TYPE_BASIC: AuthType
AUTH_TYPE_OAUTH2: AuthType
AUTH_TYPE_UNSPECIFIED: AuthType
DESCRIPTOR: _descriptor.FileDescriptor

class AuthType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
