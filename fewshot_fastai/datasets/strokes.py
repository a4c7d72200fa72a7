"""Omniglot pen trajectories: load the stroke files of Lake's minimal background sets, draw characters from strokes
at any size, and perturb a drawing the way a person redraws a character, so that each *training* character yields
as many new images as training asks for. Test images have no strokes: models still see only images at test time.

No library we use draws pen trajectories (fastai/torchvision augment pixels), so rendering and the stroke-level
perturbations are written here with PIL and numpy."""
import math, os, random
from pathlib import Path
import numpy as np
from PIL import Image, ImageChops, ImageDraw
from ..data.items import ClassFolder, IndexedView, LazyImages
from .naming import alphabet_of, drawer_of
from ..data.sources import fetch_zip
from .sources import OMNIGLOT_URL

__all__ = ['OMNIGLOT_STROKES', 'omniglot_strokes', 'read_strokes', 'render_strokes', 'perturb_strokes', 'drop_hidden_taps', 'stroke_file',
           'StrokeImages', 'with_strokes']

# name -> (zip file name, md5 of the copy in Lake's repository, `python/` folder)
OMNIGLOT_STROKES = {
    'background_small1': ('strokes_background_small1.zip', '830eb54f8a9297820a4471fcc4f9d9bc'),
    'background_small2': ('strokes_background_small2.zip', '84d9defc54b809861ffd9886798dcffb'),
}


def omniglot_strokes(
    name:str='background_small1', # one of `OMNIGLOT_STROKES`: background_small1, background_small2
    data_dir=None, # folder with the zip or extracted folder; default ``$FEWSHOT_DATA``
    url:str|None=None, # override the download URL (default: Lake's repository, `python/` folder)
    force:bool=False, # download and extract again even if a copy is found
) -> Path:
    "Folder of the pen trajectories of Omniglot `name`: ``Alphabet/characterNN/NNNN_DD.txt``, named as the PNGs"
    if name not in OMNIGLOT_STROKES:
        raise ValueError(f'unknown Omniglot stroke set {name!r}; choose from {list(OMNIGLOT_STROKES)}')
    fname, md5 = OMNIGLOT_STROKES[name]
    return fetch_zip(fname, url or OMNIGLOT_URL + fname, md5, data_dir=data_dir, force=force)


def stroke_file(
    image_file, # an Omniglot PNG, `.../Alphabet/characterNN/NNNN_DD.png`
    strokes_dir, # the matching `omniglot_strokes(...)` folder
) -> Path:
    "The stroke file of an Omniglot image: the same `Alphabet/characterNN/NNNN_DD` under `strokes_dir`, ending in .txt"
    p = Path(image_file)
    return Path(strokes_dir)/p.parent.parent.name/p.parent.name/(p.stem + '.txt')


def read_strokes(
    fn, # a stroke file: lines `x,y,t` between `START`, `BREAK` (pen up) and the end
) -> list:
    "The strokes of one drawing: a list of (n,2) float arrays of (x, y) in image pixels (105x105, y down)"
    strokes, cur = [], []
    for line in Path(fn).read_text().split('\n'):
        line = line.strip()
        if line in ('START', 'BREAK', ''):
            if cur: strokes.append(np.array(cur, dtype=np.float64))
            cur = []
            continue
        try: x, y, _ = (float(v) for v in line.split(','))
        except ValueError: raise ValueError(f'{fn}: not a stroke line: {line!r}') from None
        cur.append((x, -y))   # the files store y upwards (negative rows)
    if cur: strokes.append(np.array(cur, dtype=np.float64))
    if not strokes: raise ValueError(f'{fn}: no strokes')
    return strokes


def render_strokes(
    strokes:list, # (n,2) arrays of (x, y) in pixels of a `src_size` canvas
    size:int=105, # side of the square image drawn
    width:float=5., # pen width in pixels of the `src_size` canvas (5: the Omniglot PNGs' ink)
    src_size:int=105, # the canvas the coordinates refer to (Omniglot: 105)
) -> Image.Image:
    """Black ink on white ('L' image, `size` x `size`), as the Omniglot PNGs: lines with round joints and caps.
    At 105 px with the defaults it reproduces the PNG of the same drawing: intersection over union of the ink 0.92
    on average over samples of 100 drawings of background_small1 (tested > 0.85)."""
    s = size/src_size
    img = Image.new('L', (size, size), 255)
    draw = ImageDraw.Draw(img)
    w = max(1, round(width*s))
    r = w/2
    for st in strokes:
        pts = [(float((x + 0.5)*s), float((y + 0.5)*s)) for x, y in st]   # the PNGs' pixel grid is offset by half a pixel
        if len(pts) > 1: draw.line(pts, fill=0, width=w, joint='curve')
        for x, y in (pts[0], pts[-1]):   # round caps (PIL's lines have square ends)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=0)
    return img


def _affine(pts, centre, rot, scale, shear, shift):
    "Rotate by `rot` (radians), scale (sx, sy), shear about `centre`, then translate by `shift`"
    c, s = math.cos(rot), math.sin(rot)
    m = np.array([[c, -s], [s, c]]) @ np.array([[1, shear], [0, 1]]) @ np.diag(scale)
    return (pts - centre) @ m.T + centre + shift


def _resample(st, step):
    "Points every `step` pixels of arc length along a stroke (its ends kept)"
    seg = np.linalg.norm(np.diff(st, axis=0), axis=1)
    arc = np.concatenate([[0], np.cumsum(seg)])
    if arc[-1] < 1e-6: return st[:1].copy(), arc[:1]
    n = max(2, int(math.ceil(arc[-1]/step)) + 1)
    t = np.linspace(0, arc[-1], n)
    return np.stack([np.interp(t, arc, st[:, 0]), np.interp(t, arc, st[:, 1])], 1), t


def _smooth_interp(t, tk, dk):
    """Displacements `dk` (k,2) at arc lengths `tk`, interpolated at `t` with a cosine ease between neighbours: smooth
    (zero slope at each control point) and vectorised. scipy's CubicSpline gives a similar curve but its construction
    costs ~0.5 ms per stroke, more than drawing the whole character."""
    j = np.clip(np.searchsorted(tk, t, side='right') - 1, 0, len(tk) - 2)
    f = (t - tk[j])/np.maximum(tk[j + 1] - tk[j], 1e-9)
    w = ((1 - np.cos(np.pi*np.clip(f, 0, 1)))/2)[:, None]
    return dk[j]*(1 - w) + dk[j + 1]*w


def drop_hidden_taps(
    strokes:list, # (n,2) arrays in pixels, as `read_strokes` gives
    reach:float=4., # a tap this close (pixels) to another stroke's path is hidden in its ink
    extent:float=2., # a stroke whose points all lie within this distance of its first point is a tap
) -> list:
    """`strokes` without the taps (pen touches of almost no length) that lie on another stroke. About 4% of the
    drawings of background_small1 have one: in the PNG it is hidden in the other stroke's ink, but once the strokes
    are moved apart by `perturb_strokes` it would show as a dot the person never drew. Taps away from other ink
    (real dots) are kept."""
    strokes = [np.asarray(st, dtype=np.float64) for st in strokes]
    is_tap = [np.linalg.norm(st - st[0], axis=1).max() < extent for st in strokes]
    def hidden(k):
        others = [o for j, o in enumerate(strokes) if j != k and not is_tap[j]]
        return bool(others) and min(np.linalg.norm(o - strokes[k][0], axis=1).min() for o in others) < reach
    return [st for k, st in enumerate(strokes) if not (is_tap[k] and hidden(k))]


def perturb_strokes(
    strokes:list, # (n,2) arrays in pixels, as `read_strokes` gives
    rng:random.Random|None=None, # source of randomness (default: `random`'s global one)
    rotate:float=10., # global rotation, degrees (uniform in +-rotate)
    scale:float=0.15, # global scale change (x and y each in 1+-scale)
    shear:float=0.2, # global shear (+-shear)
    shift:float=6., # global translation, pixels (+-shift)
    stroke_rotate:float=8., # per-stroke rotation about the stroke's centre, degrees
    stroke_scale:float=0.1, # per-stroke scale change
    stroke_shift:float=3., # per-stroke translation, pixels
    noise:float=1.5, # std of control-point displacement, pixels
    spacing:float=12., # control points every `spacing` pixels of the stroke; the noise is interpolated between them
    trim:float=0.08, # each stroke may start later / end earlier by up to this share of its length
    size:int=105, # canvas side: the drawing is kept inside it
) -> list:
    """A new drawing of the same character, as a person redraws it: each stroke moves, turns and stretches a
    little (per-stroke affine), its path wobbles smoothly (noise at control points along the stroke, eased
    between them), its ends start and stop a little differently (`trim`), and the whole
    character gets a global affine. Stroke order and direction do not change a rendered image, so they are not varied.
    Taps hidden in another stroke's ink are dropped first (`drop_hidden_taps`)."""
    rng = rng or random
    u = lambda a: rng.uniform(-a, a)
    out = []
    for st in drop_hidden_taps(strokes):
        st = np.asarray(st, dtype=np.float64)
        if len(st) > 2 and trim > 0:
            n = len(st)
            a, b = int(rng.uniform(0, trim)*n), n - int(rng.uniform(0, trim)*n)
            if b - a >= 2: st = st[a:b]
        pts, t = _resample(st, 2.)
        if noise > 0 and len(pts) > 1:
            k = max(2, int(round(t[-1]/spacing)) + 1)
            tk = np.linspace(0, t[-1], k)
            dk = np.array([[rng.gauss(0, noise), rng.gauss(0, noise)] for _ in range(k)])
            pts = pts + _smooth_interp(t, tk, dk)
        if stroke_rotate or stroke_scale or stroke_shift:
            pts = _affine(pts, pts.mean(0), math.radians(u(stroke_rotate)), (1 + u(stroke_scale),)*2, 0.,
                          np.array([u(stroke_shift), u(stroke_shift)]))
        out.append(pts)
    allp = np.concatenate(out)
    centre = (allp.min(0) + allp.max(0))/2
    out = [_affine(p, centre, math.radians(u(rotate)), (1 + u(scale), 1 + u(scale)), u(shear),
                   np.array([u(shift), u(shift)])) for p in out]
    allp = np.concatenate(out)   # keep the drawing on the canvas: shift it back in (and shrink it if it is too big)
    lo, hi = allp.min(0), allp.max(0)
    span = (hi - lo).max()
    if span > size - 6:
        c = (lo + hi)/2
        out = [(p - c)*(size - 6)/span + size/2 for p in out]
        allp = np.concatenate(out); lo, hi = allp.min(0), allp.max(0)
    fix = np.clip(3 - lo, 0, None) - np.clip(hi - (size - 3), 0, None)
    return [p + fix for p in out]


class StrokeImages(LazyImages):
    """The images of `files` (Omniglot PNGs) where each access may instead give a *new drawing* of the same image:
    with probability `p`, its strokes (read from `strokes_dir`) perturbed by `perturb_strokes(**perturb)` and
    rendered with a pen width drawn from `width`. Use it as the training images of `EpisodeDataLoaders`
    (`train_images=`) for unlimited training examples of every training character.
    `compounds` adds new classes: `[(i, j), ...]` items whose image is the ink union of images `i` and `j` (drawn by
    the same person, e.g. two characters of one alphabet), perturbed as one drawing when rendered from strokes."""
    def __init__(
        self,
        files, # Omniglot image files, one item each
        strokes_dir, # their `omniglot_strokes(...)` folder
        p:float=0.5, # probability that an access gives a perturbed stroke rendering rather than the PNG
        width=(4., 6.), # pen width range, pixels at 105 px
        compounds=None, # extra items: (i, j) pairs of indices into `files`, drawn as the union of both
        cache_size:int=4096, # decoded PNGs kept (the stroke files are all read once, at creation)
        seed:int|None=None, # seed of this process's renderings (None: from `random`)
        **perturb, # passed to `perturb_strokes`
    ):
        super().__init__(files, cache_size)
        if strokes_dir is None and p > 0: raise ValueError('StrokeImages: p > 0 needs `strokes_dir` (the stroke files)')
        self.strokes = [read_strokes(stroke_file(f, strokes_dir)) for f in self.files] if strokes_dir else None
        self.p, self.width, self.perturb = p, width, perturb
        self.compounds = [tuple(c) for c in (compounds or [])]
        from fastai.torch_core import rank_distrib
        rank = rank_distrib()   # each DDP process draws its own renderings
        self.seed, self._pid = seed, os.getpid()
        self._rng = random.Random(seed if seed is None or not rank else hash((seed, rank)))

    @property
    def rng(self) -> random.Random:
        "This process's generator: DataLoader workers and DDP ranks each get their own stream (seed, rank, worker)"
        if os.getpid() != self._pid:   # a forked/spawned worker: re-seed once, so workers do not repeat each other
            from torch.utils.data import get_worker_info
            from fastai.torch_core import rank_distrib
            wi = get_worker_info()
            # torch gives each worker of each epoch its own seed (drawn from the main process's torch generator)
            self._rng, self._pid = random.Random(hash((self.seed, rank_distrib(), wi.seed if wi else os.getpid()))), os.getpid()
        return self._rng

    def __len__(self): return len(self.files) + len(self.compounds)

    def _png(self, i):
        if i < len(self.files): return super().__getitem__(i).convert('L')
        a, b = self.compounds[i - len(self.files)]
        return ImageChops.darker(self._png(a), self._png(b))   # ink union: the darker pixel of the two

    def drawing(
        self,
        i:int, # item index (compounds come after the files)
    ) -> list:
        "The strokes of item `i` (a compound's are both characters' strokes)"
        if i < len(self.files): return self.strokes[i]
        a, b = self.compounds[i - len(self.files)]
        return self.drawing(a) + self.drawing(b)

    def render(
        self,
        i:int, # item index
    ) -> Image.Image:
        "A new perturbed rendering of item `i` ('L', 105 px)"
        w = self.rng.uniform(*self.width) if isinstance(self.width, (tuple, list)) else self.width
        return render_strokes(perturb_strokes(self.drawing(i), self.rng, **self.perturb), width=w)

    def __getitem__(self, i):
        if isinstance(i, slice): return [self[k] for k in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self): raise IndexError(f'index {i} out of range for {len(self)} images')
        i = i % len(self)
        return self.render(i) if self.rng.random() < self.p else self._png(i)

    def subset(
        self,
        idx, # positions of the items to keep (compounds included)
    ):
        "The stored images at positions `idx`, never re-drawn (LazyImages' own `subset` knows nothing of compounds)"
        return IndexedView(self.originals, idx)

    @property
    def originals(self):
        "The same items as stored images (PNGs and their ink unions), never re-drawn: for validation"
        return _Originals(self)


class _Originals:
    "Items of a `StrokeImages` without renderings"
    def __init__(self, src): self.src = src
    def __len__(self): return len(self.src)
    def __getitem__(self, i): return self.src._png(i % len(self.src))


def with_strokes(
    cf:ClassFolder, # Omniglot training characters (eager or lazy)
    strokes_dir=None, # their `omniglot_strokes(...)` folder; None: no re-drawing (`p` must be 0)
    p:float=0.5, # probability that a training image is replaced by a new perturbed drawing at each access
    n_compounds:int=0, # new classes to add: ink unions of two characters of one alphabet, drawer by drawer
    seed:int=0, # seed of the compound choice and of the renderings
    **kwargs, # passed to `StrokeImages` (pen `width`, `perturb_strokes` arguments)
) -> ClassFolder:
    """`cf` with `StrokeImages` as its images (so `EpisodeDataLoaders` re-draws training images from their strokes)
    and `n_compounds` new classes. A compound class joins two characters of one alphabet: its image by drawer d is
    the ink union of both characters' images by drawer d, so it keeps the 20 people's own variation.
    Validation episodes of `EpisodeDataLoaders` read `images.originals`, never re-drawn."""
    if n_compounds < 0: raise ValueError(f'with_strokes: n_compounds must be >= 0, got {n_compounds}')
    rng = random.Random(seed)
    by_class = {}
    for i, l in enumerate(cf.labels): by_class.setdefault(l, {})[drawer_of(cf.files[i])] = i
    by_alpha = {}
    for l in by_class: by_alpha.setdefault(alphabet_of(cf.classes[l]), []).append(l)
    candidates = sorted((a, b) for ls in by_alpha.values() for k, a in enumerate(ls) for b in ls[k + 1:]
                        if len(set(by_class[a]) & set(by_class[b])) >= 2)
    if n_compounds > len(candidates):
        raise ValueError(f'with_strokes: asked for {n_compounds} compound classes, but only {len(candidates)} pairs of '
                         'characters of one alphabet share at least 2 drawers')
    compounds, labels, files, classes = [], list(cf.labels), list(cf.files), list(cf.classes)
    for a, b in rng.sample(candidates, n_compounds):
        classes.append(f'{cf.classes[a]}+{cf.classes[b].split("/")[-1]}')
        for d in sorted(set(by_class[a]) & set(by_class[b])):
            compounds.append((by_class[a][d], by_class[b][d]))
            labels.append(len(classes) - 1); files.append(cf.files[by_class[a][d]])   # the file names its drawer
    if p == 0 and not cf.lazy:
        # nothing is ever re-drawn: reuse cf's decoded images and join the compounds once, so that the loaders take
        # their fast, eager path (no second decoding of the PNGs)
        union = lambda a, b: ImageChops.darker(cf.images[a].convert('L'), cf.images[b].convert('L'))
        images, lazy = list(cf.images) + [union(a, b) for a, b in compounds], False
    else: images, lazy = StrokeImages(cf.files, strokes_dir, p, compounds=compounds, seed=seed, **kwargs), True
    res = ClassFolder.from_items(cf.root, classes, files, labels, images, lazy)
    return res
