// JPEG: our own marker walk (EXIF orientation, Adobe APP14, SOF sanity) plus TurboJPEG for
// everything else. CMYK and YCCK JPEGs (print and photo workflows, PIL's "CMYK" saves) are decoded
// to CMYK by libjpeg and converted to RGB here, as PIL's convert("RGB") does.
#include <turbojpeg.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "server/image/codecs.h"
#include "server/image/decode.h"
#include "server/image/exif.h"

namespace cropshield::image::internal {
namespace {

bool IsSofMarker(uint8_t m) {
  // C4 (DHT), C8 (JPG) and CC (DAC) share the range but are not frame headers.
  return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
}

absl::Status Corrupt(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("corrupt JPEG header: ", what));
}

// What the marker walk finds beyond ImageInfo.
struct JpegHeader {
  ImageInfo info;
  int components = 0;  // 1 (gray), 3 (YCbCr/RGB) or 4 (CMYK/YCCK)
  // An Adobe APP14 segment: its writer (Photoshop, libjpeg, PIL) stores CMYK inverted
  // (0 = full ink).
  bool adobe = false;
};

bool IsAdobeSegment(uint8_t marker, absl::string_view segment) {
  return marker == 0xEE && absl::StartsWith(segment, "Adobe");
}

// Walks the markers from SOI up to SOS: the size from the frame header (SOF), whose sample
// precision and colour components are checked here, and the EXIF orientation. libjpeg would find
// the same frame header; we walk them ourselves because TurboJPEG does not expose APP1 (EXIF), and
// so that a probe needs no codec.
absl::StatusOr<JpegHeader> ParseJpegHeader(absl::string_view bytes) {
  const auto* d = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t n = bytes.size();
  if (n < 3 || d[0] != 0xFF || d[1] != 0xD8) return Corrupt("missing SOI marker");
  JpegHeader parsed;
  ImageInfo& header = parsed.info;
  header.format = ImageFormat::kJpeg;
  int precision = 0;
  int& components = parsed.components;
  bool have_sof = false;
  bool have_exif = false;
  size_t pos = 2;
  while (true) {
    if (pos >= n) {
      return absl::InvalidArgumentError("truncated JPEG data: header ends before the image data");
    }
    if (d[pos] != 0xFF) {
      return Corrupt(absl::StrCat("expected a marker at offset ", pos));
    }
    while (pos < n && d[pos] == 0xFF) ++pos;  // Fill bytes may pad any marker.
    if (pos >= n) {
      return absl::InvalidArgumentError("truncated JPEG data: header ends before the image data");
    }
    const uint8_t marker = d[pos++];
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;  // No payload.
    if (marker == 0x00 || marker == 0xD8) {
      return Corrupt(absl::StrCat("unexpected marker 0xff", absl::Hex(marker, absl::kZeroPad2),
                                  " at offset ", pos - 2));
    }
    if (marker == 0xD9) return Corrupt("end of image before any image data");
    if (n - pos < 2) {
      return absl::InvalidArgumentError("truncated JPEG data: header ends inside a marker");
    }
    const size_t length = (size_t{d[pos]} << 8) | d[pos + 1];
    if (length < 2) return Corrupt(absl::StrCat("marker segment length ", length, " is too short"));
    if (n - pos < length) {
      return absl::InvalidArgumentError("truncated JPEG data: header ends inside a marker segment");
    }
    const absl::string_view segment = bytes.substr(pos + 2, length - 2);
    if (IsSofMarker(marker)) {
      if (have_sof) return Corrupt("two frame (SOF) markers");
      if (segment.size() < 6) return Corrupt("frame header (SOF) too short");
      const auto* s = reinterpret_cast<const uint8_t*>(segment.data());
      precision = s[0];
      header.height = (s[1] << 8) | s[2];
      header.width = (s[3] << 8) | s[4];
      components = s[5];
      have_sof = true;
    } else if (marker == 0xE1 && !have_exif &&
               absl::StartsWith(segment, absl::string_view("Exif\0\0", 6))) {
      header.orientation = ParseExifOrientation(segment.substr(6));
      have_exif = true;  // Only the first Exif APP1 counts, as in PIL.
    } else if (IsAdobeSegment(marker, segment)) {
      parsed.adobe = true;
    } else if (marker == 0xDA) {
      if (!have_sof) return Corrupt("scan (SOS) before the frame header (SOF)");
      break;
    }
    pos += length;
  }
  if (header.width == 0 || header.height == 0) {
    // Height 0 means "defined later by a DNL marker", which libjpeg does not support either.
    return absl::InvalidArgumentError(absl::StrCat("unsupported JPEG: frame header declares ",
                                                   header.width, "x", header.height, " pixels"));
  }
  if (precision != 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported JPEG: ", precision, "-bit samples (only 8-bit)"));
  }
  if (components != 1 && components != 3 && components != 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported JPEG: ", components,
                     " colour components (1: gray, 3: colour, 4: CMYK are supported)"));
  }
  return parsed;
}

struct TjHandleDeleter {
  void operator()(void* handle) const { tjDestroy(handle); }
};
using TjHandle = std::unique_ptr<void, TjHandleDeleter>;

// Turns a failed TurboJPEG call into a status. TurboJPEG reports two kinds of failure: TJERR_FATAL
// (libjpeg gave up: not decodable at all) and TJERR_WARNING (libjpeg recovered, e.g. by padding a
// truncated stream with grey or skipping corrupt entropy data). Warnings are how truncation and
// corruption surface, and a partially grey leaf would still get a confident but meaningless
// diagnosis, so both are rejected; the distinction only shapes the message.
absl::Status TurboJpegError(tjhandle handle) {
  const std::string message = tjGetErrorStr2(handle);
  if (tjGetErrorCode(handle) == TJERR_FATAL) {
    return absl::InvalidArgumentError(absl::StrCat("invalid JPEG: ", message));
  }
  if (absl::StrContains(message, "Premature end of JPEG file")) {
    return absl::InvalidArgumentError("truncated JPEG data: premature end of file");
  }
  absl::string_view detail = message;
  absl::ConsumePrefix(&detail, "Corrupt JPEG data: ");  // libjpeg's wording; don't say it twice
  return absl::InvalidArgumentError(absl::StrCat("corrupt JPEG data: ", detail));
}

absl::StatusOr<TjHandle> NewDecompressor() {
  TjHandle handle(tjInitDecompress());
  if (handle == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot create a TurboJPEG decompressor: ", tjGetErrorStr2(nullptr)));
  }
  return handle;
}

// Cross-checks our header walk against TurboJPEG's own header parse, which also rejects layouts
// TurboJPEG cannot decode. Returns TurboJPEG's colour space (TJCS_*).
absl::StatusOr<int> CheckTurboJpegHeader(tjhandle handle, absl::string_view bytes,
                                         const JpegHeader& parsed) {
  const ImageInfo& header = parsed.info;
  int width = 0;
  int height = 0;
  int subsamp = 0;
  int colorspace = 0;
  if (tjDecompressHeader3(handle, reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<unsigned long>(bytes.size()), &width, &height, &subsamp,
                          &colorspace) != 0) {
    return TurboJpegError(handle);
  }
  if (width != header.width || height != header.height) {
    return Corrupt(absl::StrCat("frame header says ", header.width, "x", header.height,
                                " but libjpeg read ", width, "x", height));
  }
  const bool four_components = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK;
  if (four_components != (parsed.components == 4)) {
    return Corrupt(absl::StrCat("frame header has ", parsed.components,
                                " components but libjpeg reads colour space ", colorspace));
  }
  return colorspace;
}

// 255 * a * b / 255^2 rounded, in integers: PIL's MULDIV255.
inline int MulDiv255(int a, int b) {
  const int t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

// CMYK (as libjpeg returns it) -> RGB, row by row in place of PIL's convert("RGB"):
// R = (255 - C) * (255 - K) / 255, likewise G from M and B from Y. With `inverted` (Adobe APP14)
// the stored samples are 255 - C etc., which PIL always assumes.
void CmykToRgb(const std::vector<uint8_t>& cmyk, bool inverted, std::vector<uint8_t>* rgb) {
  const size_t pixels = cmyk.size() / 4;
  rgb->resize(pixels * 3);
  for (size_t i = 0; i < pixels; ++i) {
    const uint8_t* in = &cmyk[i * 4];
    uint8_t* out = &(*rgb)[i * 3];
    const int k = inverted ? 255 - in[3] : in[3];
    const int not_k = 255 - k;
    for (int c = 0; c < 3; ++c) {
      const int ink = inverted ? 255 - in[c] : in[c];
      out[c] = static_cast<uint8_t>(not_k - MulDiv255(ink, not_k));
    }
  }
}

// Runs tjDecompress2 into `image` (already sized) as RGB, or for CMYK/YCCK as CMYK converted to
// RGB. The CMYK buffer lives only for the conversion.
absl::Status DecompressToRgb(tjhandle handle, absl::string_view bytes, int colorspace, bool adobe,
                             DecodedImage* image) {
  // STOPONWARNING: a warning already dooms the image (see TurboJpegError), so stop at the first
  // one, which also keeps its message. LIMITSCANS caps progressive scans (a CPU-exhaustion vector).
  // Default DCT and upsampling are the accurate ones, the same as PIL uses.
  const int flags = TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS;
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  const auto size = static_cast<unsigned long>(bytes.size());
  const size_t pixels = static_cast<size_t>(image->width) * image->height;
  // Passing the scaled size makes TurboJPEG pick exactly the chosen factor (ChooseScalingFactor).
  if (colorspace != TJCS_CMYK && colorspace != TJCS_YCCK) {
    image->rgb.resize(pixels * 3);
    if (tjDecompress2(handle, data, size, image->rgb.data(), image->width,
                      /*pitch=*/image->width * 3, image->height, TJPF_RGB, flags) != 0) {
      return TurboJpegError(handle);
    }
    return absl::OkStatus();
  }
  // libjpeg turns YCCK into CMYK itself; the inversion is ours.
  std::vector<uint8_t> cmyk(pixels * 4);
  if (tjDecompress2(handle, data, size, cmyk.data(), image->width, /*pitch=*/image->width * 4,
                    image->height, TJPF_CMYK, flags) != 0) {
    return TurboJpegError(handle);
  }
  CmykToRgb(cmyk, adobe, &image->rgb);
  return absl::OkStatus();
}

// The smallest DCT scaling factor <= 1 that keeps the shorter side >= min_shorter_side.
tjscalingfactor ChooseScalingFactor(int width, int height, int min_shorter_side) {
  tjscalingfactor best = {1, 1};
  if (min_shorter_side <= 0) return best;
  int count = 0;
  const tjscalingfactor* factors = tjGetScalingFactors(&count);
  if (factors == nullptr) return best;
  const int shorter = width < height ? width : height;
  for (int i = 0; i < count; ++i) {
    const tjscalingfactor f = factors[i];
    if (f.num <= 0 || f.denom <= 0 || f.num > f.denom) continue;  // Never upscale.
    if (TJSCALED(shorter, f) < min_shorter_side) continue;
    // Compare f < best as fractions without rounding.
    if (int64_t{f.num} * best.denom < int64_t{best.num} * f.denom) best = f;
  }
  // tjDecompress2() takes the first factor in its (descending) list whose output fits the requested
  // size. On small images a larger factor can round up to the same size; report the factor that
  // libjpeg will really use, since Preprocess() relies on it for exact geometry.
  const int target_w = TJSCALED(width, best);
  const int target_h = TJSCALED(height, best);
  for (int i = 0; i < count; ++i) {
    if (TJSCALED(width, factors[i]) <= target_w && TJSCALED(height, factors[i]) <= target_h) {
      return factors[i];
    }
  }
  return best;
}

}  // namespace

absl::StatusOr<ImageInfo> ProbeJpeg(absl::string_view bytes) {
  CS_ASSIGN_OR_RETURN(const JpegHeader parsed, ParseJpegHeader(bytes));
  CS_ASSIGN_OR_RETURN(TjHandle handle, NewDecompressor());
  CS_RETURN_IF_ERROR(CheckTurboJpegHeader(handle.get(), bytes, parsed).status());
  return parsed.info;
}

absl::StatusOr<DecodedImage> DecodeJpeg(absl::string_view bytes, const DecodeOptions& options,
                                        int* orientation) {
  CS_ASSIGN_OR_RETURN(const JpegHeader parsed, ParseJpegHeader(bytes));
  const ImageInfo& header = parsed.info;
  CS_RETURN_IF_ERROR(CheckPixelBudget(header.width, header.height, options.max_pixels));
  CS_ASSIGN_OR_RETURN(TjHandle handle, NewDecompressor());
  CS_ASSIGN_OR_RETURN(const int colorspace, CheckTurboJpegHeader(handle.get(), bytes, parsed));

  const tjscalingfactor factor =
      ChooseScalingFactor(header.width, header.height, options.min_shorter_side);
  DecodedImage image;
  image.format = ImageFormat::kJpeg;
  image.width = TJSCALED(header.width, factor);
  image.height = TJSCALED(header.height, factor);
  image.full_width = header.width;
  image.full_height = header.height;
  image.scale_num = factor.num;
  image.scale_denom = factor.denom;
  CS_RETURN_IF_ERROR(DecompressToRgb(handle.get(), bytes, colorspace, parsed.adobe, &image));
  *orientation = header.orientation;
  return image;
}

}  // namespace cropshield::image::internal
