"""Draw the example images shipped in examples/ (run again to remake them byte for byte).

They are drawn, not photographed, so the repository holds no one's picture: a figure in a
striped garment in front of a brick wall and a tree. ``registered/`` holds the "photo";
``downloaded/`` holds a repost (smaller and recompressed), a manipulated copy (the garment
region replaced by a smooth fill, the harmless stand-in for regeneration used throughout), a
before/after collage, and an unrelated drawing.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).parent


def scene(seed: int, figure_x: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """An RGB drawing (480x640) with a figure at ``figure_x``, and the mask of its garment."""
    rng = np.random.default_rng(seed)
    height, width = 640, 480
    image = np.zeros((height, width, 3), np.uint8)
    image[:] = rng.integers(120, 200, 3)
    for y in range(0, height, 24):  # bricks with random shades, offset every other row
        offset = 0 if (y // 24) % 2 else 24
        for x in range(-offset, width, 48):
            colour = [int(c) for c in rng.integers(60, 190, 3)]
            cv2.rectangle(image, (x + 2, y + 2), (x + 45, y + 21), colour, -1)
    noise = rng.normal(0, 12, image.shape)
    image = np.clip(image + noise, 0, 255).astype(np.uint8)
    for _ in range(40):  # leaves of a tree
        centre = (int(rng.integers(330, 470)), int(rng.integers(40, 260)))
        colour = [int(c) for c in rng.integers(0, 120, 3)]
        colour[1] = int(rng.integers(100, 220))
        cv2.circle(image, centre, int(rng.integers(8, 30)), colour, -1)
    cv2.rectangle(image, (385, 250), (410, 640), (80, 50, 30), -1)
    garment = np.zeros((height, width), np.uint8)
    cv2.ellipse(garment, (figure_x, 380), (85, 150), 0, 0, 360, 255, -1)
    stripes = np.zeros_like(image)
    for y in range(0, height, 16):
        cv2.rectangle(stripes, (0, y), (width, y + 7), (30, 60, 160), -1)
        cv2.rectangle(stripes, (0, y + 8), (width, y + 15), (220, 210, 190), -1)
    image[garment > 0] = stripes[garment > 0]
    cv2.circle(image, (figure_x, 170), 55, (180, 140, 120), -1)  # head
    cv2.ellipse(image, (figure_x, 140), (60, 40), 0, 180, 360, (40, 25, 20), -1)  # hair
    for eye in (figure_x - 20, figure_x + 20):
        cv2.circle(image, (eye, 170), 6, (30, 30, 30), -1)
    cv2.putText(
        image,
        "CAFE" if seed == 1 else "BAR",
        (20, 60),
        cv2.FONT_HERSHEY_DUPLEX,
        1.6,
        (250, 250, 240),
        3,
    )
    return image, garment


def save(path: Path, rgb: np.ndarray, quality: int = 88) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])


def main() -> None:
    photo, garment = scene(seed=1)
    save(HERE / "registered" / "photo.jpg", photo, 92)
    repost = cv2.resize(photo, (240, 320), interpolation=cv2.INTER_AREA)
    save(HERE / "downloaded" / "repost.jpg", repost, 70)
    fake = photo.copy()
    fill = cv2.GaussianBlur(photo, (0, 0), 25)
    fill[:] = np.clip(fill.astype(int) + np.array([60, 20, -20]), 0, 255)
    fake[garment > 0] = fill[garment > 0]
    save(HERE / "downloaded" / "manipulated.jpg", fake, 85)
    collage = np.full((640, 980, 3), 255, np.uint8)
    collage[:, :480] = photo
    collage[:, 500:] = fake
    save(HERE / "downloaded" / "collage.jpg", cv2.resize(collage, (735, 480)), 85)
    unrelated, _ = scene(seed=7, figure_x=110)
    save(HERE / "downloaded" / "unrelated.jpg", unrelated, 85)


if __name__ == "__main__":
    main()
