"""Client: blocking calls to cropshield.v1.CropShieldService over one gRPC channel."""

from typing import Any, Optional

import grpc

from . import _channel
from ._base import ClientBase
from ._photo import Photo
from ._requests import Colormap, Explanation, Method, Target
from .v1 import cropshield_pb2 as pb


class Client(ClientBase):
    __doc__ = ("A CropShield Serve client on one gRPC channel; thread-safe, share it. Failed calls "
               "raise grpc.RpcError (e.code(): grpc.StatusCode.INVALID_ARGUMENT for a bad photo, "
               "DEADLINE_EXCEEDED, UNAVAILABLE after the retries...).\n\n" + (ClientBase.__doc__ or ""))

    channel: grpc.Channel

    def _open_channel(self, options: _channel.ChannelOptions,
                      credentials: Optional[grpc.ChannelCredentials]) -> grpc.Channel:
        target = self._settings.target
        if credentials is not None:
            return grpc.secure_channel(target, credentials, options=options)
        return grpc.insecure_channel(target, options=options)

    def predict(self, photo: Photo, *, top_k: int = 3, model: Optional[str] = None,
                model_version: Optional[int] = None, request_id: str = "",
                timeout: Optional[float] = None) -> pb.PredictResponse:
        """Classifies a photo (path, encoded bytes, binary file, PIL image or HxWx3 uint8 numpy
        array): `.predictions` holds the top_k classes, highest probability first."""
        request = self._predict_request(photo, top_k, model, model_version, request_id)
        return self.stub.Predict(request, timeout=self._timeout(timeout))

    def explain(self, photo: Photo, *, target: Target = None, method: Method = "grad_cam",
                feature_map: bool = True, image_map: bool = False, overlay: bool = False,
                heatmap: bool = False, colormap: Colormap = "jet", overlay_alpha: float = 0.0,
                overlay_jpeg: bool = False, top_k: int = 3, model: Optional[str] = None,
                model_version: Optional[int] = None, request_id: str = "",
                bypass_cache: bool = False, timeout: Optional[float] = None) -> Explanation:
        """Grad-CAM family map of a photo for `target` (class index or label; None: the top-1
        class). The result's feature_map / image_map are float32 numpy arrays, overlay / heatmap
        PIL images, each None unless asked for."""
        request = self._explain_request(
            photo, model, model_version, target=target, method=method, feature_map=feature_map,
            image_map=image_map, heatmap=heatmap, overlay=overlay, colormap=colormap,
            overlay_alpha=overlay_alpha, overlay_jpeg=overlay_jpeg, top_k=top_k,
            request_id=request_id, bypass_cache=bypass_cache)
        return Explanation(self.stub.Explain(request, timeout=self._timeout(timeout)))

    def stats(self, *, timeout: Optional[float] = None) -> pb.StatsResponse:
        """Live server statistics: models and labels, request counts, latency, caches."""
        return self.stub.Stats(pb.StatsRequest(), timeout=self._timeout(timeout))

    def clear_cache(self, *, explain_cache: bool = False, predict_cache: bool = False,
                    model: Optional[str] = None, model_version: Optional[int] = None,
                    timeout: Optional[float] = None) -> pb.ClearCacheResponse:
        """Admin (needs the token): drops cached explanations and/or predictions (neither flag: both)
        of one model version, or of every model when none is named."""
        request = self._clear_cache_request(explain_cache, predict_cache, model, model_version)
        return self.stub.ClearCache(request, timeout=self._timeout(timeout),
                                    metadata=self._admin_metadata())

    def reload_model(self, version: int = 0, *,
                     timeout: Optional[float] = None) -> pb.ReloadModelResponse:
        """Admin (needs the token): loads `version` (0: the newest) and swaps it in once warm."""
        return self.stub.ReloadModel(pb.ReloadModelRequest(version=version),
                                     timeout=self._timeout(timeout), metadata=self._admin_metadata())

    def wait_ready(self, timeout: Optional[float] = None) -> None:
        """Blocks until the channel is connected (grpc.FutureTimeoutError after `timeout`)."""
        grpc.channel_ready_future(self.channel).result(timeout=self._timeout(timeout))

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
