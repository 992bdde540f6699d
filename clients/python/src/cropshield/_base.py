"""What Client and AsyncClient share: their arguments, the channel settings, request building."""

from typing import Any, Optional, Sequence, Tuple

import grpc

from . import _channel, _requests
from ._channel import PemSource
from ._photo import Photo
from .v1 import cropshield_pb2 as pb
from .v1.cropshield_pb2_grpc import CropShieldServiceStub


class ClientBase:
    """Arguments:
    target: "host:port", "dns:///name:port" (every address, round_robin), "ipv4:a:p,b:p", "unix:path".
    tls: TLS with the system's roots; implied by root_certificates / certificate_chain / private_key
        (PEM bytes or file paths; certificate_chain + private_key = mutual TLS).
    server_name: the name to verify the server's certificate against, when not the target's host.
    token: the admin token (sent as `authorization: Bearer` with clear_cache and reload_model only);
        refused on a plaintext channel to another host unless allow_plaintext_token.
    timeout: default deadline of each call in seconds, retries included (None: no deadline).
    max_attempts: 1..5 attempts per call; gRPC retries UNAVAILABLE and RESOURCE_EXHAUSTED with
        exponential backoff from initial_backoff up to max_backoff seconds (the service config's
        retryPolicy).
    lb_policy: "round_robin" (every address the name resolves to) or "pick_first".
    model, model_version: the model that answers when a call names none ("" / 0: the server's default
        model at its highest version).
    options: extra gRPC channel options, e.g. [("grpc.keepalive_time_ms", 30000)].
    """

    def __init__(self, target: str = "localhost:50051", *, tls: bool = False,
                 root_certificates: Optional[PemSource] = None,
                 certificate_chain: Optional[PemSource] = None,
                 private_key: Optional[PemSource] = None, server_name: Optional[str] = None,
                 token: Optional[str] = None, allow_plaintext_token: bool = False,
                 timeout: Optional[float] = 30.0, max_attempts: int = 3,
                 initial_backoff: float = 0.1, max_backoff: float = 2.0,
                 lb_policy: str = "round_robin", model: str = "", model_version: int = 0,
                 options: Sequence[Tuple[str, Any]] = ()) -> None:
        self._settings = _channel.Settings(
            target=target, tls=tls, root_certificates=root_certificates,
            certificate_chain=certificate_chain, private_key=private_key, server_name=server_name,
            token=token, allow_plaintext_token=allow_plaintext_token, timeout=timeout,
            max_attempts=max_attempts, initial_backoff=initial_backoff, max_backoff=max_backoff,
            lb_policy=lb_policy, options=options)
        self._model = model
        self._model_version = model_version
        self.channel = self._open_channel(_channel.channel_options(self._settings),
                                          _channel.credentials(self._settings))
        self.stub = CropShieldServiceStub(self.channel)

    def _open_channel(self, options: _channel.ChannelOptions,
                      credentials: Optional[grpc.ChannelCredentials]) -> Any:
        raise NotImplementedError

    @property
    def target(self) -> str:
        return self._settings.target

    def _timeout(self, timeout: Optional[float]) -> Optional[float]:
        return self._settings.timeout if timeout is None else timeout

    def _model_spec(self, model: Optional[str], model_version: Optional[int]) -> pb.ModelSpec:
        return _requests.model_spec(self._model if model is None else model,
                                    self._model_version if model_version is None else model_version)

    def _admin_metadata(self) -> Optional[Tuple[Tuple[str, str], ...]]:
        return _channel.admin_metadata(self._settings)

    def _predict_request(self, photo: Photo, top_k: int, model: Optional[str],
                         model_version: Optional[int], request_id: str) -> pb.PredictRequest:
        return _requests.predict_request(photo, top_k, self._model_spec(model, model_version),
                                         request_id)

    def _explain_request(self, photo: Photo, model: Optional[str], model_version: Optional[int],
                         **kwargs: Any) -> pb.ExplainRequest:
        return _requests.explain_request(photo, model=self._model_spec(model, model_version), **kwargs)

    def _clear_cache_request(self, explain_cache: bool, predict_cache: bool, model: Optional[str],
                             model_version: Optional[int]) -> pb.ClearCacheRequest:
        request = pb.ClearCacheRequest(explain_cache=explain_cache, predict_cache=predict_cache)
        if model or model_version:  # unset: every model
            request.model.CopyFrom(_requests.model_spec(model, model_version))
        return request
