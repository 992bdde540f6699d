"""Messages and enums of cropshield/v1/cropshield.proto, interchangeable with protoc's generated module.

The classes are built at import time from the serialized FileDescriptorSet that the wheel's build
step wrote with protoc (cropshield.binpb), through google.protobuf's descriptor pool and message
factory. No generated Python code is involved, so the same wheel works with protobuf 4.21 (Debian
bookworm's protobuf 3.21) and with current releases (5.x, 6.x, 7.x), whatever their runtime (upb,
cpp or pure Python). The descriptors live in a private pool: importing the build tree's own
cropshield_pb2 as well cannot conflict. Type stubs: cropshield_pb2.pyi (protoc --pyi_out).
"""

from importlib import resources
from typing import Any, Dict

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.internal import enum_type_wrapper

_FILE = "cropshield/v1/cropshield.proto"


def _pool() -> descriptor_pool.DescriptorPool:
    data = resources.files(__package__).joinpath("cropshield.binpb").read_bytes()
    pool = descriptor_pool.DescriptorPool()
    for file_proto in descriptor_pb2.FileDescriptorSet.FromString(data).file:
        pool.AddSerializedFile(file_proto.SerializeToString())
    return pool


def _class_maker(pool: descriptor_pool.DescriptorPool) -> Any:
    """GetMessageClass (protobuf >= 4.22) or one shared MessageFactory's GetPrototype (4.21)."""
    get_message_class = getattr(message_factory, "GetMessageClass", None)
    if get_message_class is not None:
        return get_message_class
    return message_factory.MessageFactory(pool).GetPrototype


def _message_class(make: Any, message: Any, qualname: str) -> Any:
    """The class of `message`, with its nested messages (map entries) as attributes and this module
    as its home (so that pickle finds it), as protoc's code has them."""
    cls = make(message)
    try:
        cls.__module__, cls.__qualname__ = __name__, qualname
    except (AttributeError, TypeError):  # a runtime whose classes refuse it: cosmetic only
        pass
    for nested in message.nested_types:
        setattr(cls, nested.name, _message_class(make, nested, f"{qualname}.{nested.name}"))
    return cls


def _define(namespace: Dict[str, Any]) -> Any:
    pool = _pool()
    file = pool.FindFileByName(_FILE)
    make = _class_maker(pool)
    for name, message in file.message_types_by_name.items():
        namespace[name] = _message_class(make, message, name)
    for name, enum in file.enum_types_by_name.items():
        namespace[name] = enum_type_wrapper.EnumTypeWrapper(enum)
        for value in enum.values:
            namespace[value.name] = value.number
    return file


DESCRIPTOR = _define(globals())
