import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PromptTemplateEngine(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROMPT_TEMPLATE_ENGINE_UNSPECIFIED: _ClassVar[PromptTemplateEngine]
    PROMPT_TEMPLATE_ENGINE_F_STRING: _ClassVar[PromptTemplateEngine]
    PROMPT_TEMPLATE_ENGINE_JINJA: _ClassVar[PromptTemplateEngine]
PROMPT_TEMPLATE_ENGINE_UNSPECIFIED: PromptTemplateEngine
PROMPT_TEMPLATE_ENGINE_F_STRING: PromptTemplateEngine
PROMPT_TEMPLATE_ENGINE_JINJA: PromptTemplateEngine

class LLM(_message.Message):
    __slots__ = ("endpoint", "model", "api_key", "sampling_parameters")
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    endpoint: str
    model: str
    api_key: str
    sampling_parameters: _struct_pb2.Struct
    def __init__(self, endpoint: _Optional[str] = ..., model: _Optional[str] = ..., api_key: _Optional[str] = ..., sampling_parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ProxyLLM(_message.Message):
    __slots__ = ("endpoint", "model", "api_key", "sampling_parameters")
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    endpoint: str
    model: str
    api_key: str
    sampling_parameters: _struct_pb2.Struct
    def __init__(self, endpoint: _Optional[str] = ..., model: _Optional[str] = ..., api_key: _Optional[str] = ..., sampling_parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class PromptTemplate(_message.Message):
    __slots__ = ("template", "engine")
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    template: str
    engine: PromptTemplateEngine
    def __init__(self, template: _Optional[str] = ..., engine: _Optional[_Union[PromptTemplateEngine, str]] = ...) -> None: ...

class CustomResource(_message.Message):
    __slots__ = ("type", "value")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    type: str
    value: _struct_pb2.Value
    def __init__(self, type: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class Resource(_message.Message):
    __slots__ = ("llm", "proxy_llm", "prompt_template", "custom")
    LLM_FIELD_NUMBER: _ClassVar[int]
    PROXY_LLM_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_FIELD_NUMBER: _ClassVar[int]
    llm: LLM
    proxy_llm: ProxyLLM
    prompt_template: PromptTemplate
    custom: CustomResource
    def __init__(self, llm: _Optional[_Union[LLM, _Mapping]] = ..., proxy_llm: _Optional[_Union[ProxyLLM, _Mapping]] = ..., prompt_template: _Optional[_Union[PromptTemplate, _Mapping]] = ..., custom: _Optional[_Union[CustomResource, _Mapping]] = ...) -> None: ...

class ResourcesUpdate(_message.Message):
    __slots__ = ("resources_id", "version", "create_time", "update_time", "resources", "namespace")
    class ResourcesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Resource
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Resource, _Mapping]] = ...) -> None: ...
    RESOURCES_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    resources_id: str
    version: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    resources: _containers.MessageMap[str, Resource]
    namespace: str
    def __init__(self, resources_id: _Optional[str] = ..., version: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resources: _Optional[_Mapping[str, Resource]] = ..., namespace: _Optional[str] = ...) -> None: ...
