"""Drawing a heatmap: colorise it and blend it over the 32x32 model input or the original picture."""
from __future__ import annotations

import numpy as np
from PIL import Image


def colorize(heatmap: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """(H, W) float in [0, 1] -> (H, W, 3) uint8 RGB via a matplotlib colormap."""
    from matplotlib import colormaps

    if colormap not in colormaps:
        raise ValueError(f"Unknown colormap {colormap!r}; try 'jet', 'inferno', 'viridis' or 'turbo'.")
    rgba = colormaps[colormap](np.clip(np.nan_to_num(heatmap), 0.0, 1.0))
    return (rgba[..., :3] * 255 + 0.5).astype(np.uint8)


def blend(image: Image.Image, heatmap: np.ndarray, opacity: float = 0.45, colormap: str = "jet") -> Image.Image:
    """Heatmap (h, w) in [0, 1], resized bilinearly to `image`, blended at `opacity` (0..1)."""
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be between 0 and 1; got {opacity}.")
    heat = Image.fromarray(np.asarray(heatmap, np.float32), "F").resize(image.size, Image.Resampling.BILINEAR)
    coloured = Image.fromarray(colorize(np.asarray(heat), colormap))
    return Image.blend(image.convert("RGB"), coloured, opacity)


def overlay_on_model_input(pixels: np.ndarray, heatmap: np.ndarray, scale: int = 8, opacity: float = 0.45,
                           colormap: str = "jet") -> Image.Image:
    """The 32x32 picture the model saw, enlarged `scale` times with hard pixel edges, heatmap on top."""
    image = Image.fromarray(np.asarray(pixels, np.uint8))
    enlarged = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    return blend(enlarged, heatmap, opacity, colormap)


def overlay_on_original(original: Image.Image, heatmap: np.ndarray, opacity: float = 0.45, colormap: str = "jet",
                        max_side: int = 768) -> Image.Image:
    """The uploaded picture (shrunk to at most `max_side` for display), heatmap stretched over it.

    The model saw the whole picture squashed to 32x32, so the map stretches back over all of it.
    """
    display = original.convert("RGB")
    if max(display.size) > max_side:
        display.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    if min(display.size) < 128:  # tiny originals: enlarge so the map is visible
        factor = int(np.ceil(256 / max(display.size)))
        display = display.resize((display.width * factor, display.height * factor), Image.Resampling.NEAREST)
    return blend(display, heatmap, opacity, colormap)
