#include "client/bench/photo_header.h"

#include <cstdint>

#include "absl/strings/match.h"

namespace cropshield::bench {
namespace {

uint32_t Byte(absl::string_view b, size_t i) { return static_cast<uint8_t>(b[i]); }
uint32_t Be16(absl::string_view b, size_t i) { return Byte(b, i) << 8 | Byte(b, i + 1); }
uint32_t Be32(absl::string_view b, size_t i) { return Be16(b, i) << 16 | Be16(b, i + 2); }
uint32_t Le16(absl::string_view b, size_t i) { return Byte(b, i) | Byte(b, i + 1) << 8; }
uint32_t Le24(absl::string_view b, size_t i) { return Le16(b, i) | Byte(b, i + 2) << 16; }

std::optional<PhotoHeader> ReadPng(absl::string_view b) {
  // Signature (8), IHDR length (4) and type (4), width, height, bit depth, colour type.
  if (b.size() < 26 || b.substr(12, 4) != "IHDR") return std::nullopt;
  PhotoHeader header{"png", static_cast<int>(Be32(b, 16)), static_cast<int>(Be32(b, 20)), 0};
  switch (Byte(b, 25)) {
    case 0:
      header.channels = 1;
      break;  // grey
    case 4:
      header.channels = 2;
      break;  // grey + alpha
    case 2:
      header.channels = 3;
      break;  // RGB
    case 3:
      header.channels = 3;
      break;  // palette
    case 6:
      header.channels = 4;
      break;  // RGBA
    default:
      return std::nullopt;
  }
  return header;
}

bool IsStartOfFrame(uint32_t marker) {
  // SOF0..SOF15 minus DHT (C4), JPG (C8) and DAC (CC), which share the range.
  return marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
}

std::optional<PhotoHeader> ReadJpeg(absl::string_view b) {
  size_t at = 2;  // after SOI
  while (at + 4 <= b.size()) {
    if (Byte(b, at) != 0xFF) return std::nullopt;
    const uint32_t marker = Byte(b, at + 1);
    if (marker == 0xFF) {  // fill byte
      ++at;
      continue;
    }
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) {  // no length field
      at += 2;
      continue;
    }
    const size_t length = Be16(b, at + 2);
    if (IsStartOfFrame(marker)) {
      // Length, precision, height, width, components.
      if (at + 10 > b.size()) return std::nullopt;
      return PhotoHeader{"jpeg", static_cast<int>(Be16(b, at + 7)),
                         static_cast<int>(Be16(b, at + 5)), static_cast<int>(Byte(b, at + 9))};
    }
    if (marker == 0xDA || marker == 0xD9 || length < 2) return std::nullopt;  // no frame header
    at += 2 + length;
  }
  return std::nullopt;
}

std::optional<PhotoHeader> ReadWebp(absl::string_view b) {
  // RIFF header (12), then the first chunk: fourcc (4), size (4), data from byte 20.
  if (b.size() < 30) return std::nullopt;
  const absl::string_view chunk = b.substr(12, 4);
  PhotoHeader header{"webp", 0, 0, 3};
  if (chunk == "VP8 ") {  // frame tag (3), start code 9d 01 2a, 14-bit width and height
    if (Byte(b, 23) != 0x9D || Byte(b, 24) != 0x01 || Byte(b, 25) != 0x2A) return std::nullopt;
    header.width = static_cast<int>(Le16(b, 26) & 0x3FFF);
    header.height = static_cast<int>(Le16(b, 28) & 0x3FFF);
  } else if (chunk == "VP8L") {  // signature 0x2f, then width-1 and height-1 in 14 bits each
    if (Byte(b, 20) != 0x2F) return std::nullopt;
    const uint32_t bits = Le16(b, 21) | Le16(b, 23) << 16;
    header.width = static_cast<int>((bits & 0x3FFF) + 1);
    header.height = static_cast<int>(((bits >> 14) & 0x3FFF) + 1);
  } else if (chunk == "VP8X") {  // flags (4), canvas width-1 and height-1 in 24 bits each
    header.width = static_cast<int>(Le24(b, 24) + 1);
    header.height = static_cast<int>(Le24(b, 27) + 1);
  } else {
    return std::nullopt;
  }
  return header;
}

}  // namespace

std::optional<PhotoHeader> ReadPhotoHeader(absl::string_view bytes) {
  if (absl::StartsWith(bytes, "\xFF\xD8\xFF")) return ReadJpeg(bytes);
  if (absl::StartsWith(bytes, "\x89PNG\r\n\x1A\n")) return ReadPng(bytes);
  if (absl::StartsWith(bytes, "RIFF") && bytes.size() >= 12 && bytes.substr(8, 4) == "WEBP") {
    return ReadWebp(bytes);
  }
  return std::nullopt;
}

}  // namespace cropshield::bench
