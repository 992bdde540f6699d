// Model input preparation: the C++ equivalent of the torchvision pipeline the classifiers were
// trained with, Resize(shorter side) -> CenterCrop -> ToTensor -> Normalize.
//
// Thread safety: all functions are pure and reentrant; concurrent calls need distinct `out` spans.
#ifndef CROPSHIELD_SERVER_IMAGE_PREPROCESS_H_
#define CROPSHIELD_SERVER_IMAGE_PREPROCESS_H_

#include <array>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "server/image/decode.h"

namespace cropshield::image {

struct PreprocessOptions {
  int resize_shorter_side = 256;
  int input_size = 224;                                  // center crop side
  std::array<float, 3> mean = {0.485f, 0.456f, 0.406f};  // in RGB order
  std::array<float, 3> std = {0.229f, 0.224f, 0.225f};
  bool bgr = false;  // channel order of the output tensor
};

// The region of the full-size oriented photo that the model sees, in full-size photo pixel
// coordinates (x, y = top-left corner; may be fractional). Used to place Grad-CAM heatmaps on the
// photo. When the crop is larger than the resized photo (torchvision then pads with zeros) the box
// extends past the photo's edges, so x or y can be negative.
struct CropBox {
  double x = 0, y = 0, width = 0, height = 0;
};

// The crop box for a full-size oriented photo of full_width x full_height, without any pixels.
// INVALID_ARGUMENT for non-positive sizes or options.
absl::StatusOr<CropBox> ComputeCropBox(int full_width, int full_height,
                                       const PreprocessOptions& options);

// Equivalent of torchvision Resize(resize_shorter_side) -> CenterCrop(input_size) -> ToTensor ->
// Normalize(mean, std) on the full-size photo (PIL image), computed from `image`, which may be
// DCT-downscaled (image.width < image.full_width). Writes 3*input_size*input_size floats, CHW
// planar, into `out` (out.size() must equal that; else INVALID_ARGUMENT). Fills *crop_box if
// non-null.
//
// Geometry follows torchvision exactly: the long side becomes int(size * long / short); the crop
// offset is round-half-even((resized - crop) / 2); zero padding when the crop exceeds the resized
// image. Only the crop window is resampled, mapped back to `image` coordinates (fractional
// positions kept), with PIL's antialiased bilinear filter (a triangle kernel widened by the
// shrink factor; plain bilinear interpolation when enlarging) in PIL's 8-bit fixed-point
// arithmetic. A full-size image therefore gives torchvision's tensor bit for bit; a DCT-scaled
// JPEG differs by the DCT downscaling only. A 256x256 image with the default options yields
// exactly pixels [16, 240) of the input, normalised.
//
// An image with full_width == full_height == 0 is taken to be at full size.
absl::Status Preprocess(const DecodedImage& image, const PreprocessOptions& options,
                        absl::Span<float> out, CropBox* crop_box);

}  // namespace cropshield::image

#endif  // CROPSHIELD_SERVER_IMAGE_PREPROCESS_H_
