"""Channel settings shared by Client and AsyncClient: service config (retries, load balancing),
TLS credentials, message size limits, admin token metadata."""

import ipaddress
import json
import os
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence, Tuple, Union

import grpc

from .v1.cropshield_pb2_grpc import SERVICE

PemSource = Union[bytes, str, "os.PathLike[str]"]
ChannelOptions = List[Tuple[str, Any]]

# Status codes retried by gRPC itself (the retryPolicy of the service config).
RETRYABLE_CODES = ("UNAVAILABLE", "RESOURCE_EXHAUSTED")
MAX_RECEIVE_BYTES = 256 << 20  # Explain's image_map of a large photo is width * height * 4 bytes


@dataclass
class Settings:
    """Everything a client's channel and calls are made from (see Client's arguments)."""

    target: str
    tls: bool = False
    root_certificates: Optional[PemSource] = None
    certificate_chain: Optional[PemSource] = None
    private_key: Optional[PemSource] = None
    server_name: Optional[str] = None
    token: Optional[str] = None
    allow_plaintext_token: bool = False
    timeout: Optional[float] = 30.0
    max_attempts: int = 3
    initial_backoff: float = 0.1
    max_backoff: float = 2.0
    lb_policy: str = "round_robin"
    options: Sequence[Tuple[str, Any]] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if any(x is not None for x in (self.root_certificates, self.certificate_chain, self.private_key)):
            self.tls = True
        if (self.certificate_chain is None) != (self.private_key is None):
            raise ValueError("certificate_chain and private_key go together (mutual TLS)")
        if not 1 <= self.max_attempts <= 5:
            raise ValueError("max_attempts must be 1..5 (gRPC caps retries at 5 attempts)")
        if self.token and not self.tls and not self.allow_plaintext_token and not is_loopback(self.target):
            raise ValueError("refusing to send the admin token in plaintext to a remote host: use TLS, "
                             "or allow_plaintext_token=True")


def service_config(settings: Settings) -> str:
    """JSON service config: the load balancing policy and, with max_attempts > 1, a retryPolicy for
    every method of the service (gRPC retries UNAVAILABLE and RESOURCE_EXHAUSTED with exponential
    backoff and jitter, within the call's deadline)."""
    config: dict = {"loadBalancingConfig": [{settings.lb_policy: {}}]}
    if settings.max_attempts > 1:
        config["methodConfig"] = [{
            "name": [{"service": SERVICE}],
            "retryPolicy": {
                "maxAttempts": settings.max_attempts,
                "initialBackoff": f"{settings.initial_backoff:.3f}s",
                "maxBackoff": f"{settings.max_backoff:.3f}s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": list(RETRYABLE_CODES),
            },
        }]
    return json.dumps(config)


def channel_options(settings: Settings) -> ChannelOptions:
    options: ChannelOptions = [
        ("grpc.service_config", service_config(settings)),
        ("grpc.enable_retries", 1 if settings.max_attempts > 1 else 0),
        ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
        ("grpc.max_send_message_length", -1),
    ]
    if settings.server_name:
        options.append(("grpc.ssl_target_name_override", settings.server_name))
    overridden = {key for key, _ in settings.options}  # the caller's options replace these
    return [option for option in options if option[0] not in overridden] + list(settings.options)


def credentials(settings: Settings) -> Optional[grpc.ChannelCredentials]:
    """TLS credentials (None for plaintext): the roots given or the system's, and a client
    certificate for mutual TLS."""
    if not settings.tls:
        return None
    return grpc.ssl_channel_credentials(root_certificates=_pem(settings.root_certificates),
                                        private_key=_pem(settings.private_key),
                                        certificate_chain=_pem(settings.certificate_chain))


def _pem(source: Optional[PemSource]) -> Optional[bytes]:
    """PEM bytes as given, or read from a path (str or PathLike)."""
    if source is None or isinstance(source, bytes):
        return source
    with open(source, "rb") as f:
        return f.read()


def admin_metadata(settings: Settings) -> Optional[Tuple[Tuple[str, str], ...]]:
    return (("authorization", f"Bearer {settings.token}"),) if settings.token else None


def is_loopback(target: str) -> bool:
    """True when every address of the target is this machine (localhost, 127.x, ::1, unix:)."""
    if target.startswith(("unix:", "unix-abstract:")):
        return True
    for scheme in ("dns:///", "dns:", "ipv4:", "ipv6:"):
        if target.startswith(scheme):
            target = target[len(scheme):]
            break
    return all(_host_is_loopback(_host(address)) for address in target.split(","))


def _host(address: str) -> str:
    if address.startswith("["):
        return address[1:].split("]", 1)[0]
    return address.rsplit(":", 1)[0] if address.count(":") == 1 else address


def _host_is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
