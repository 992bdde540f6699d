"""AsyncClient: the asyncio twin of Client, on grpc.aio."""

from typing import Any, Optional

import grpc
import grpc.aio

from . import _channel
from ._base import ClientBase
from ._photo import Photo
from ._requests import Colormap, Explanation, Method, Target
from .v1 import cropshield_pb2 as pb


class AsyncClient(ClientBase):
    __doc__ = ("Client's asyncio twin (grpc.aio): the same arguments and methods, as coroutines. "
               "Create it inside the event loop that uses it; `async with` or `await close()`. "
               "Failed calls raise grpc.aio.AioRpcError (a grpc.RpcError).\n\n" + (ClientBase.__doc__ or ""))

    channel: grpc.aio.Channel

    def _open_channel(self, options: _channel.ChannelOptions,
                      credentials: Optional[grpc.ChannelCredentials]) -> grpc.aio.Channel:
        target = self._settings.target
        if credentials is not None:
            return grpc.aio.secure_channel(target, credentials, options=options)
        return grpc.aio.insecure_channel(target, options=options)

    async def predict(self, photo: Photo, *, top_k: int = 3, model: Optional[str] = None,
                      model_version: Optional[int] = None, request_id: str = "",
                      timeout: Optional[float] = None) -> pb.PredictResponse:
        """See Client.predict."""
        request = self._predict_request(photo, top_k, model, model_version, request_id)
        return await self.stub.Predict(request, timeout=self._timeout(timeout))

    async def explain(self, photo: Photo, *, target: Target = None, method: Method = "grad_cam",
                      feature_map: bool = True, image_map: bool = False, overlay: bool = False,
                      heatmap: bool = False, colormap: Colormap = "jet", overlay_alpha: float = 0.0,
                      overlay_jpeg: bool = False, top_k: int = 3, model: Optional[str] = None,
                      model_version: Optional[int] = None, request_id: str = "",
                      bypass_cache: bool = False, timeout: Optional[float] = None) -> Explanation:
        """See Client.explain."""
        request = self._explain_request(
            photo, model, model_version, target=target, method=method, feature_map=feature_map,
            image_map=image_map, heatmap=heatmap, overlay=overlay, colormap=colormap,
            overlay_alpha=overlay_alpha, overlay_jpeg=overlay_jpeg, top_k=top_k,
            request_id=request_id, bypass_cache=bypass_cache)
        return Explanation(await self.stub.Explain(request, timeout=self._timeout(timeout)))

    async def stats(self, *, timeout: Optional[float] = None) -> pb.StatsResponse:
        """See Client.stats."""
        return await self.stub.Stats(pb.StatsRequest(), timeout=self._timeout(timeout))

    async def clear_cache(self, *, explain_cache: bool = False, predict_cache: bool = False,
                          model: Optional[str] = None, model_version: Optional[int] = None,
                          timeout: Optional[float] = None) -> pb.ClearCacheResponse:
        """See Client.clear_cache."""
        request = self._clear_cache_request(explain_cache, predict_cache, model, model_version)
        return await self.stub.ClearCache(request, timeout=self._timeout(timeout),
                                          metadata=self._admin_metadata())

    async def reload_model(self, version: int = 0, *,
                           timeout: Optional[float] = None) -> pb.ReloadModelResponse:
        """See Client.reload_model."""
        return await self.stub.ReloadModel(pb.ReloadModelRequest(version=version),
                                           timeout=self._timeout(timeout),
                                           metadata=self._admin_metadata())

    async def wait_ready(self) -> None:
        """Waits until the channel is connected."""
        await self.channel.channel_ready()

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
