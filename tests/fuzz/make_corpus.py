#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/*/corpus). Run with Debian's python3
(Pillow, python3-grpc-tools) from the repository root: /usr/bin/python3 tests/fuzz/make_corpus.py

Small valid inputs of every supported kind plus edge cases; the files are committed, this script
only documents and regenerates them.
"""
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FUZZ = os.path.join(ROOT, "tests", "fuzz")


def write(target, name, data):
    d = os.path.join(FUZZ, target, "corpus")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def gradient(w, h, mode="RGB"):
    im = Image.new("RGB", (w, h))
    im.putdata([((x * 255) // max(w - 1, 1), (y * 255) // max(h - 1, 1), (x * y) % 256)
                for y in range(h) for x in range(w)])
    return im.convert(mode)


def encode(im, fmt, **kw):
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def png_chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def image_corpus():
    t = "image"
    write(t, "jpeg_baseline_16x12.jpg", encode(gradient(16, 12), "JPEG", quality=75))
    write(t, "jpeg_progressive_24x16.jpg", encode(gradient(24, 16), "JPEG", progressive=True))
    write(t, "jpeg_gray_8x8.jpg", encode(gradient(8, 8, "L"), "JPEG"))
    write(t, "jpeg_420_odd_33x17.jpg", encode(gradient(33, 17), "JPEG", subsampling=2))
    write(t, "jpeg_cmyk_8x8.jpg", encode(gradient(8, 8, "CMYK"), "JPEG"))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise
    write(t, "jpeg_exif_orientation6_20x10.jpg", encode(gradient(20, 10), "JPEG", exif=exif))
    exif[0x0112] = 9  # out of range: read as 1
    write(t, "jpeg_exif_orientation9_12x8.jpg", encode(gradient(12, 8), "JPEG", exif=exif))
    jpeg = encode(gradient(16, 16), "JPEG")
    write(t, "jpeg_truncated.jpg", jpeg[: len(jpeg) // 2])
    write(t, "png_rgb_9x7.png", encode(gradient(9, 7), "PNG"))
    write(t, "png_rgba_8x8.png", encode(gradient(8, 8, "RGBA"), "PNG"))
    gray16 = Image.new("I;16", (6, 5))
    gray16.putdata([i * 2000 for i in range(30)])
    write(t, "png_gray16_6x5.png", encode(gray16, "PNG"))
    write(t, "png_gray_alpha_5x5.png", encode(gradient(5, 5, "LA"), "PNG"))
    write(t, "png_palette_trns_8x4.png",
          encode(gradient(8, 4, "P"), "PNG", transparency=0))
    # Adam7 by hand (Pillow does not write interlaced PNG): 2x2 RGB is pass 1 (0,0), pass 6 (1,0)
    # and pass 7 row 1, each scanline with filter byte 0.
    ihdr = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 1)
    raw = b"\0" + bytes([255, 0, 0]) + b"\0" + bytes([0, 255, 0]) + b"\0" + bytes([0, 0, 255, 9, 9, 9])
    write(t, "png_interlaced_2x2.png", b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
          png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b""))
    write(t, "png_1x1.png", encode(gradient(1, 1), "PNG"))
    png = bytearray(encode(gradient(4, 4), "PNG"))
    png[-20] ^= 0xFF  # corrupt the IDAT payload / CRC
    write(t, "png_bad_crc.png", bytes(png))
    # Decompression bomb: the header claims 100000 x 100000 pixels, the data is tiny.
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 301)
    write(t, "png_bomb_header.png", b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
          png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b""))
    write(t, "webp_lossy_16x16.webp", encode(gradient(16, 16), "WEBP", quality=50))
    write(t, "webp_lossless_7x5.webp", encode(gradient(7, 5), "WEBP", lossless=True))
    write(t, "webp_alpha_8x8.webp", encode(gradient(8, 8, "RGBA"), "WEBP", quality=50))
    write(t, "not_an_image.txt", "this is not an image\n")
    write(t, "jpeg_magic_only.jpg", b"\xff\xd8\xff")


def proto_modules():
    out = tempfile.mkdtemp(prefix="cropshield_fuzz_pb_")
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "--proto_path", os.path.join(ROOT, "proto"),
                    "--python_out", out, "cropshield/v1/cropshield.proto",
                    "cropshield/v1/model_metadata.proto"], check=True)
    sys.path.insert(0, out)
    from cropshield.v1 import cropshield_pb2  # pylint: disable=import-outside-toplevel
    return cropshield_pb2


def request_corpus():
    pb = proto_modules()
    t = "request"
    jpeg = encode(gradient(4, 4), "JPEG", quality=20)  # over the fuzzer's 64-byte image limit

    def predict(name, **kw):
        r = pb.PredictRequest(**kw)
        write(t, "predict_" + name, b"\x00" + r.SerializeToString())

    def explain(name, **kw):
        r = pb.ExplainRequest(**kw)
        write(t, "explain_" + name, b"\x01" + r.SerializeToString())

    small = pb.Image(data=b"\xff\xd8\xff\xe0" + b"x" * 20)
    predict("default", image=small)
    predict("top_k_max", image=small, top_k=5, request_id="r1")
    predict("top_k_over", image=small, top_k=6)
    predict("top_k_negative", image=small, top_k=-1)
    predict("empty_image", top_k=1)
    predict("oversized_image", image=pb.Image(data=jpeg))
    predict("model_spec", image=small, model=pb.ModelSpec(name="cropshield-demo", version=1))
    explain("default", image=small)
    explain("class_index", image=small, class_index=4, top_k=2)
    explain("class_index_over", image=small, class_index=5)
    explain("class_index_negative", image=small, class_index=-1)
    explain("class_label", image=small, class_label="Potato__healthy")
    explain("class_label_unknown", image=small, class_label="Rice__blast")
    explain("class_label_empty", image=small, class_label="")
    explain("methods", image=small, method=pb.EXPLAIN_METHOD_LAYER_CAM)
    explain("method_unknown", image=small, method=99)
    explain("overlay_jpeg", image=small, outputs=pb.ExplainOutputs(
        overlay=True, overlay_encoding=pb.IMAGE_ENCODING_JPEG, overlay_alpha=0.3, jpeg_quality=70,
        colormap=pb.COLORMAP_VIRIDIS))
    explain("overlay_png_alpha_one", image=small, outputs=pb.ExplainOutputs(
        overlay=True, overlay_alpha=1.0, jpeg_quality=50))
    explain("all_outputs", image=small, outputs=pb.ExplainOutputs(
        feature_map=True, image_map=True, heatmap_png=True, overlay=True,
        colormap=pb.COLORMAP_TURBO))
    explain("alpha_over", image=small, outputs=pb.ExplainOutputs(overlay=True, overlay_alpha=1.5))
    explain("alpha_nan", image=small,
            outputs=pb.ExplainOutputs(overlay=True, overlay_alpha=float("nan")))
    explain("quality_over", image=small, outputs=pb.ExplainOutputs(
        overlay=True, overlay_encoding=pb.IMAGE_ENCODING_JPEG, jpeg_quality=101))
    explain("colormap_unknown", image=small, outputs=pb.ExplainOutputs(heatmap_png=True, colormap=42))
    explain("encoding_unknown", image=small, outputs=pb.ExplainOutputs(overlay=True,
                                                                       overlay_encoding=7))


def metadata_corpus():
    t = "model_package"
    with open(os.path.join(ROOT, "models/repository/cropshield-demo/1/model.json")) as f:
        demo = json.load(f)
    demo["labels"] = demo["labels"][:4]
    write(t, "valid.json", json.dumps(demo, indent=1))

    def variant(name, edit):
        m = json.loads(json.dumps(demo))
        edit(m)
        write(t, name, json.dumps(m))

    variant("valid_bgr_untrained.json", lambda m: m.update(untrained=True) or
            m["preprocessing"].update(channel_order="BGR"))
    variant("format_version_2.json", lambda m: m.update(format_version=2))
    variant("unknown_field.json", lambda m: m.update(extra=1))
    variant("one_label.json", lambda m: m.update(labels=["a"]))
    variant("empty_label.json", lambda m: m.update(labels=["a", ""]))
    variant("weights_path.json", lambda m: m.update(weights_file="../model.pt"))
    variant("weights_dotdot.json", lambda m: m.update(weights_file=".."))
    variant("hash_upper.json", lambda m: m.update(weights_xxh3_128="6ADFA27A295E40804A19AEB9A1164921"))
    variant("no_preprocessing.json", lambda m: m.pop("preprocessing"))
    variant("input_size_big.json", lambda m: m["preprocessing"].update(input_size=5000))
    variant("std_zero.json", lambda m: m["preprocessing"].update(std=[0.2, 0, 0.2]))
    variant("mean_nan.json", lambda m: m["preprocessing"].update(mean=["NaN", 0.4, 0.4]))
    variant("std_infinity.json", lambda m: m["preprocessing"].update(std=["Infinity", 0.2, 0.2]))
    variant("no_grad_cam.json", lambda m: m.pop("grad_cam"))
    variant("version_string.json", lambda m: m.update(version="7"))
    variant("duplicate_labels.json", lambda m: m.update(labels=["a", "b", "a"]))
    write(t, "not_json.txt", "model: cropshield\n")
    write(t, "truncated.json", json.dumps(demo)[:120])
    write(t, "empty_object.json", "{}")


if __name__ == "__main__":
    image_corpus()
    request_corpus()
    metadata_corpus()
