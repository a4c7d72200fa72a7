"""Images from anything a user hands us: files and bytes decoded once, PIL images of any mode, arrays and tensors, all
brought to one canonical 8-bit 'L' or 'RGB' image by one rule (`to_image`), with errors that name the input."""
from pathlib import Path
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

__all__ = ['decode_image', 'canonical_image', 'decoded_bytes', 'to_image', 'IMAGE_TYPES']

def decode_image(
    fn:Path, # an image file
) -> Image.Image:
    """Fully decoded image `fn` as 8-bit 'L' (grey) or 'RGB' (`canonical_image`: 16-bit scaled, palettes expanded,
    transparency composited on white); raises naming the file if it is not a readable image"""
    try:
        with Image.open(fn) as im:
            im.load()
            loaded = im
    except Image.DecompressionBombError as e:   # PIL's guard against huge images (> ~179 Mpx): refused, named
        raise ValueError(f'{fn}: refused, too large an image ({str(e).split(" could be")[0]})') from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f'{fn}: not a readable image ({type(e).__name__}: {e})') from e
    return canonical_image(loaded, where=str(fn))

BACKGROUND = 255   # what transparent pixels become: white paper, the background of drawings (and neutral for photos)
_GREY_MODES = ('1', 'L', 'LA', 'La', 'I', 'I;16', 'I;16L', 'I;16B', 'I;16N', 'F')

def _from_levels(a:np.ndarray, where:str) -> np.ndarray:
    """8-bit levels from the pixel values of an array, by one rule whatever the container: uint8 as it is, bool 0/255,
    uint16 over its full range (/257), other integers must lie in 0..255, floats in [0, 1] (x255, rounded)"""
    if a.dtype == np.uint8: return a
    if a.dtype == np.bool_: return a.astype(np.uint8)*255
    if a.dtype == np.uint16: return np.round(a/257.).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        if a.size and (a.min() < 0 or a.max() > 255):
            raise ValueError(f'{where}: {a.dtype} pixel values in {a.min()}..{a.max()}; integers must lie in 0..255 '
                             '(uint8), or use uint16 (0..65535) or floats in [0, 1]')
        return a.astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all(): raise ValueError(f'{where}: {int((~np.isfinite(a)).sum())} pixel value(s) are NaN or infinite')
        if a.size and (a.min() < 0 or a.max() > 1):
            raise ValueError(f'{where}: float pixel values in {a.min():.4g}..{a.max():.4g}; floats must lie in [0, 1] (not normalised)')
        return np.round(a.astype(np.float64)*255).astype(np.uint8)
    raise ValueError(f'{where}: pixel type {a.dtype} is not an image type (uint8, uint16, bool, float in [0, 1])')

def _composite(rgb:np.ndarray, alpha:np.ndarray) -> np.ndarray:
    "8-bit colour or grey `rgb` over the white background, by 8-bit `alpha`"
    a = alpha.astype(np.float32)[..., None]/255 if rgb.ndim == 3 else alpha.astype(np.float32)/255
    return np.round(rgb.astype(np.float32)*a + BACKGROUND*(1 - a)).astype(np.uint8)

def canonical_image(
    im:Image.Image, # a decoded PIL image in any mode
    where:str='image', # what to name in an error
) -> Image.Image:
    """`im` as 8-bit 'L' (grey sources) or 'RGB' (colour sources): one conversion for every container, so that the
    network sees the same pixels whatever the file held. 16-bit and 32-bit grey are scaled over their range (not clipped),
    palettes expanded (with their transparency), and every alpha channel composited on white (`BACKGROUND`)."""
    mode = im.mode
    if mode in ('L', 'RGB'): return im
    if mode == 'P': im = im.convert('RGBA' if 'transparency' in im.info else 'RGB'); mode = im.mode
    if mode == 'PA': im = im.convert('RGBA'); mode = 'RGBA'
    if mode == 'RGB': return im
    if mode == '1': return im.convert('L')
    if mode.startswith('I;16'): return Image.fromarray(_from_levels(np.asarray(im).astype(np.uint16), where), 'L')
    if mode == 'I':   # 32-bit integers: 16-bit PNGs and TIFFs open so in some readers; their range is 0..65535
        a = np.asarray(im)
        if a.size and (a.min() < 0 or a.max() > 65535): raise ValueError(f'{where}: 32-bit pixel values in {a.min()}..{a.max()}, not an image range')
        return Image.fromarray(_from_levels(a.astype(np.uint16), where), 'L')
    if mode == 'F': return Image.fromarray(_from_levels(np.asarray(im), where), 'L')
    if mode in ('LA', 'La'):
        a = np.asarray(im.convert('LA'))
        return Image.fromarray(_composite(a[..., 0], a[..., 1]), 'L')
    if mode in ('RGBA', 'RGBa'):
        a = np.asarray(im.convert('RGBA'))
        return Image.fromarray(_composite(a[..., :3], a[..., 3]), 'RGB')
    if mode in ('RGBX', 'CMYK', 'YCbCr', 'LAB', 'HSV'): return im.convert('RGB')
    raise ValueError(f'{where}: image mode {mode!r} is not supported (grey, RGB, palette, 16-bit grey, with or without alpha)')

_BANDS = {'1': 1, 'L': 1, 'P': 1, 'I;16': 2, 'LA': 2, 'RGB': 3, 'YCbCr': 3, 'RGBA': 4, 'CMYK': 4, 'I': 4, 'F': 4}

def decoded_bytes(
    files, # image paths
    sample:int=200, # how many headers to read at most
) -> int:
    """Estimated memory of `files` decoded (PIL, stored mode), from the headers of up to `sample` of them, evenly
    spaced: `Image.open` reads the header only. A corrupt header raises an error naming the file."""
    files = list(files)
    if not files: return 0
    step = max(1, len(files)//sample)
    picked = files[::step][:sample]
    total = 0
    for f in picked:
        try:
            with Image.open(f) as im: total += im.width*im.height*_BANDS.get(im.mode, 4)
        except Image.DecompressionBombError as e:
            raise ValueError(f'{f}: refused, too large an image ({str(e).split(" could be")[0]})') from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise ValueError(f'{f}: not a readable image ({type(e).__name__}: {e})') from e
    return int(total/len(picked)*len(files))

def _array_image(x:np.ndarray, where:str) -> Image.Image:
    "An (H,W) or (H,W,C) array, C in 1, 3, 4 (RGBA: composited on white), as an 8-bit 'L' or 'RGB' image"
    if x.ndim == 3 and x.shape[-1] == 1: x = x[..., 0]
    if not (x.ndim == 2 or x.ndim == 3 and x.shape[-1] in (3, 4)) or 0 in x.shape:
        raise ValueError(f'{where}: an image array must be (H,W) or (H,W,C) with C in 1, 3, 4 (tensors: (C,H,W)); got shape {tuple(x.shape)}')
    a = _from_levels(np.ascontiguousarray(x), where)
    if a.ndim == 2: return Image.fromarray(a, 'L')
    if a.shape[-1] == 4: return Image.fromarray(_composite(a[..., :3], a[..., 3]), 'RGB')
    return Image.fromarray(a, 'RGB')

IMAGE_TYPES = 'a path, PIL image, encoded image bytes, numpy array (H,W) or (H,W,C), or tensor (H,W) or (C,H,W)'

def to_image(
    x, # path, PIL image, image file bytes, numpy array or tensor
    img_cls, # fastai image class: `PILImage` (RGB) or `PILImageBW` (grey)
):
    """`x` as an `img_cls` image, by one rule for every input: a path or the bytes of an image file are decoded; numpy
    arrays are (H,W) or (H,W,C) as PIL and skimage give them, tensors (H,W) or (C,H,W) as torchvision gives them, C in
    1, 3 or 4 (4: RGBA, composited on white); pixel values: uint8 as they are, uint16 over 0..65535, bool 0/255, other
    integers in 0..255, floats in [0, 1]. NaN or infinite pixels, other ranges, shapes and types are refused (ValueError /
    TypeError naming them)."""
    mode = img_cls._open_args['mode']
    if isinstance(x, (str, Path)):
        if not Path(x).is_file(): raise FileNotFoundError(f'{x}: no such image file')
        x = decode_image(Path(x))
    elif isinstance(x, (bytes, bytearray, memoryview)):
        import io
        try:
            with Image.open(io.BytesIO(bytes(x))) as im:
                im.load(); x = canonical_image(im, 'image bytes')
        except Image.DecompressionBombError: raise ValueError('image bytes: refused, too large an image') from None
        except (UnidentifiedImageError, OSError, SyntaxError) as e: raise ValueError(f'image bytes: not a readable image ({type(e).__name__})') from None
    elif isinstance(x, torch.Tensor):
        t = x.detach().cpu()
        if t.ndim == 3:
            if t.shape[0] not in (1, 3, 4): raise ValueError(f'image tensor: (H,W) or (C,H,W) with C in 1, 3, 4; got shape {tuple(x.shape)}')
            t = t.permute(1, 2, 0)
        elif t.ndim != 2: raise ValueError(f'image tensor: (H,W) or (C,H,W) with C in 1, 3, 4; got shape {tuple(x.shape)}')
        if t.dtype == torch.bfloat16 or t.dtype == torch.float16: t = t.float()
        x = _array_image(t.numpy(), 'image tensor')
    elif isinstance(x, np.ndarray): x = _array_image(x, 'image array')
    elif isinstance(x, Image.Image): x = canonical_image(x, 'PIL image')
    else: raise TypeError(f'cannot make an image of {type(x).__name__}: give {IMAGE_TYPES}')
    return img_cls.create(x.convert(mode))
