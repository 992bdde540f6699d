"""Reference maps for explain_place_parity_test.

Usage: torch_interpolate_reference.py OUT_DIR SPEC...
Each SPEC is MWxMH:PWxPH:BX,BY,BW,BH (integers; the box may extend past the photo). For SPEC number
i this writes OUT_DIR/i.map.f32 (a seeded random MH x MW map in [0,1)) and OUT_DIR/i.ref.f32 (the
PH x PW photo map: the map resized to BH x BW with
torch.nn.functional.interpolate(mode="bilinear", align_corners=False), pasted at (BX, BY) and
clipped to the photo, zero elsewhere). Raw little-endian float32, row-major.
"""
import os
import sys

import torch
import torch.nn.functional as F


def main(argv):
    out_dir = argv[1]
    for index, spec in enumerate(argv[2:]):
        map_size, photo_size, box = spec.split(":")
        mw, mh = (int(v) for v in map_size.split("x"))
        pw, ph = (int(v) for v in photo_size.split("x"))
        bx, by, bw, bh = (int(v) for v in box.split(","))
        generator = torch.Generator().manual_seed(1000 + index)
        cam = torch.rand(mh, mw, generator=generator, dtype=torch.float32)
        resized = F.interpolate(cam[None, None], size=(bh, bw), mode="bilinear",
                                align_corners=False)[0, 0]
        photo = torch.zeros(ph, pw, dtype=torch.float32)
        x0, y0 = max(bx, 0), max(by, 0)
        x1, y1 = min(bx + bw, pw), min(by + bh, ph)
        if x1 > x0 and y1 > y0:
            photo[y0:y1, x0:x1] = resized[y0 - by:y1 - by, x0 - bx:x1 - bx]
        with open(os.path.join(out_dir, f"{index}.map.f32"), "wb") as f:
            f.write(cam.numpy().astype("<f4").tobytes())
        with open(os.path.join(out_dir, f"{index}.ref.f32"), "wb") as f:
            f.write(photo.numpy().astype("<f4").tobytes())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
