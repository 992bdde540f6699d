"""Client stub of cropshield.v1.CropShieldService, written by hand (no grpc_tools needed), with the
interface of grpc_tools' generated CropShieldServiceStub. Works on grpc.Channel and grpc.aio.Channel
(the aio channel's callables return awaitables)."""

from typing import Any, Callable, Tuple

from . import cropshield_pb2 as pb

SERVICE = "cropshield.v1.CropShieldService"

# (method, request class, response class)
METHODS: Tuple[Tuple[str, Any, Any], ...] = (
    ("Predict", pb.PredictRequest, pb.PredictResponse),
    ("Explain", pb.ExplainRequest, pb.ExplainResponse),
    ("ClearCache", pb.ClearCacheRequest, pb.ClearCacheResponse),
    ("Stats", pb.StatsRequest, pb.StatsResponse),
    ("ReloadModel", pb.ReloadModelRequest, pb.ReloadModelResponse),
)


def _unary_unary(channel: Any, method: str, request: Any, response: Any) -> Callable[..., Any]:
    return channel.unary_unary(f"/{SERVICE}/{method}",
                               request_serializer=request.SerializeToString,
                               response_deserializer=response.FromString)


class CropShieldServiceStub:
    """stub.Predict(request, timeout=..., metadata=...) and so on, one attribute per RPC."""

    Predict: Callable[..., Any]
    Explain: Callable[..., Any]
    ClearCache: Callable[..., Any]
    Stats: Callable[..., Any]
    ReloadModel: Callable[..., Any]

    def __init__(self, channel: Any) -> None:
        for method, request, response in METHODS:
            setattr(self, method, _unary_unary(channel, method, request, response))
