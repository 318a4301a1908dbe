"""Random images for VLM benchmarks, as base64 data URLs for chat messages.

Sizes are drawn from weighted buckets (the seeds' vLLM runs used 512x512, 720x1280,
1024x1024 and 1080x1920 with equal weight). Pixels are i.i.d. random RGB from a seeded
generator, and every image is checked to be byte-unique, so no server-side image or prefix
cache can serve one request from another's work.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Mapping, Sequence

import numpy as np

from pytest_gpubench.errors import GpubenchError

SEED_BUCKETS: dict[tuple[int, int], float] = {
    (512, 512): 0.25,
    (720, 1280): 0.25,
    (1024, 1024): 0.25,
    (1080, 1920): 0.25,
}


def check_buckets(buckets: Mapping[tuple[int, int], float]) -> dict[tuple[int, int], float]:
    out = {}
    for size, weight in buckets.items():
        if (
            not isinstance(size, tuple)
            or len(size) != 2
            or not all(isinstance(v, int) and v > 0 for v in size)
        ):
            raise GpubenchError(f"image bucket {size!r} must be a (height, width) pair of ints")
        if not weight > 0:
            raise GpubenchError(f"image bucket {size} has weight {weight}; weights must be > 0")
        out[size] = float(weight)
    if not out:
        raise GpubenchError("image_buckets is empty; give at least one (height, width): weight")
    return out


class ImageSource:
    """Makes unique random images; ``next_urls(n)`` returns n data URLs."""

    def __init__(
        self,
        buckets: Mapping[tuple[int, int], float] | None = None,
        fmt: str = "jpeg",
        seed: int | Sequence[int] = 0,
    ) -> None:
        try:
            from PIL import Image
        except ImportError:
            raise GpubenchError(
                "image workloads need Pillow: pip install 'pytest-gpubench[serving]'"
            ) from None
        self._image = Image
        fmt = fmt.lower()
        if fmt not in ("jpeg", "png"):
            raise GpubenchError(f"image_format must be 'jpeg' or 'png', got {fmt!r}")
        self.fmt = fmt
        self.buckets = check_buckets(buckets or SEED_BUCKETS)
        self.sizes = list(self.buckets)
        weights = np.array([self.buckets[s] for s in self.sizes])
        self.p = weights / weights.sum()
        self.rng = np.random.default_rng(seed)
        self.seen: set[bytes] = set()
        self.drawn: dict[tuple[int, int], int] = dict.fromkeys(self.sizes, 0)

    def one(self) -> str:
        size = self.sizes[int(self.rng.choice(len(self.sizes), p=self.p))]
        h, w = size
        while True:
            pixels = self.rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
            buf = io.BytesIO()
            self._image.fromarray(pixels, "RGB").save(buf, format=self.fmt.upper())
            data = buf.getvalue()
            digest = hashlib.sha1(data).digest()
            if digest not in self.seen:
                self.seen.add(digest)
                break
        self.drawn[size] += 1
        mime = "image/jpeg" if self.fmt == "jpeg" else "image/png"
        return f"data:{mime};base64,{base64.b64encode(data).decode()}"

    def next_urls(self, n: int) -> list[str]:
        return [self.one() for _ in range(n)]
