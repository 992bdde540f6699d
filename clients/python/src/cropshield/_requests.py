"""Request messages built from Client arguments, and the Explanation result. Shared by Client and
AsyncClient."""

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Optional, Union

from . import _photo
from .v1 import cropshield_pb2 as pb

Method = Union[str, int]  # "grad_cam", "grad_cam_plus_plus", "hires_cam", "layer_cam" or the enum
Colormap = Union[str, int]  # "jet", "turbo", "viridis" or the enum
Target = Union[int, str, None]  # class index, class label, or None for the top-1 class


def model_spec(name: Optional[str], version: Optional[int]) -> pb.ModelSpec:
    return pb.ModelSpec(name=name or "", version=version or 0)


def enum_value(enum: Any, prefix: str, value: Union[str, int]) -> Any:
    """An enum number from its number, its full name or its short name (case-insensitive)."""
    if isinstance(value, int):
        return value
    name = value.upper()
    try:
        return enum.Value(name if name.startswith(prefix) else prefix + name)
    except ValueError:
        choices = ", ".join(n[len(prefix):].lower() for n in enum.keys() if not n.endswith("UNSPECIFIED"))
        raise ValueError(f"unknown {prefix.lower().rstrip('_')} {value!r} (one of {choices})") from None


def predict_request(photo: _photo.Photo, top_k: int, model: pb.ModelSpec,
                    request_id: str) -> pb.PredictRequest:
    return pb.PredictRequest(image=pb.Image(data=_photo.photo_bytes(photo)), top_k=top_k,
                             model=model, request_id=request_id)


def explain_request(photo: _photo.Photo, *, target: Target, method: Method, feature_map: bool,
                    image_map: bool, heatmap: bool, overlay: bool, colormap: Colormap,
                    overlay_alpha: float, overlay_jpeg: bool, top_k: int, model: pb.ModelSpec,
                    request_id: str, bypass_cache: bool) -> pb.ExplainRequest:
    outputs = pb.ExplainOutputs(
        feature_map=feature_map, image_map=image_map, heatmap_png=heatmap, overlay=overlay,
        colormap=enum_value(pb.Colormap, "COLORMAP_", colormap), overlay_alpha=overlay_alpha,
        overlay_encoding=pb.IMAGE_ENCODING_JPEG if overlay_jpeg else pb.IMAGE_ENCODING_PNG)
    request = pb.ExplainRequest(image=pb.Image(data=_photo.photo_bytes(photo)),
                                method=enum_value(pb.ExplainMethod, "EXPLAIN_METHOD_", method),
                                outputs=outputs, top_k=top_k, model=model, request_id=request_id,
                                bypass_cache=bypass_cache)
    if isinstance(target, bool):
        raise TypeError("target must be a class index (int) or a class label (str)")
    if isinstance(target, int):
        request.class_index = target
    elif isinstance(target, str):
        request.class_label = target
    return request


@dataclass(frozen=True)
class Explanation:
    """An Explain answer: the maps as float32 numpy arrays (height x width, values in [0, 1]) and the
    rendered images as PIL images, converted when first read (numpy / Pillow needed only then);
    `response` is the ExplainResponse message itself."""

    response: pb.ExplainResponse

    @property
    def target(self) -> pb.Prediction:
        return self.response.target

    @property
    def predictions(self) -> Any:
        return self.response.predictions

    @property
    def cached(self) -> bool:
        return self.response.cached

    @property
    def crop_box(self) -> pb.CropBox:
        return self.response.crop_box

    @cached_property
    def feature_map(self) -> Any:
        """The map at the model's feature resolution (e.g. 14 x 14), or None if not asked for."""
        return _photo.float_map(self.response.feature_map)

    @cached_property
    def image_map(self) -> Any:
        """The map on the photo's pixel grid (height x width of the photo), or None."""
        return _photo.float_map(self.response.image_map)

    @cached_property
    def overlay(self) -> Any:
        """The heatmap over the photo as a PIL image (RGB), or None if not asked for."""
        return _photo.pil_image(self.response.overlay)

    @cached_property
    def heatmap(self) -> Any:
        """The heatmap as a PIL image (RGBA, cropped-away area transparent), or None."""
        return _photo.pil_image(self.response.heatmap_png)
