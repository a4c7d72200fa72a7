"""A reader of dlib's binary serialisation (`dlib/serialize.h`, `dlib/dnn/*.h`), enough to read a trained `dnn`
network's layers and weights into numpy without dlib and without pickle. dlib writes no schema: the reader is told the
network's layer nesting (`read_network`) and checks every name, version, hyper-parameter and tensor shape against it.

The primitives, as dlib writes them:
- integers: one control byte (low 4 bits: how many bytes follow, 0x80: negative), then the magnitude, little endian;
- bool: the character '1' or '0'; strings: their length (an integer) then the bytes;
- floats: two integers, a mantissa (int64) and an exponent (int16): mantissa * 2**exponent (exponent 32000/1/2:
  +inf, -inf, NaN);
- tensors: version 2, four dimensions (integers), then the values as little-endian float32.
A layer wrapper (`add_layer`) writes its version, then the layer beneath it, then its own details and training state;
tags and skips write their version and the layer beneath. So a file reads as: the loss, every wrapper's version from the
outside in, the input layer, then each layer's details from the inside out."""
import math
from dataclasses import dataclass, field
import numpy as np

__all__ = ['DlibFormatError', 'DlibReader', 'DlibLayer', 'read_network']

class DlibFormatError(ValueError):
    "A dlib file that does not hold what the reader expects (names the file, the byte offset and what was found)"

_MAX_TENSOR = 1 << 28   # values; far above any layer of the networks read here, far below memory

class DlibReader:
    "dlib's serialisation primitives over the bytes of one file, each read bounded by the bytes left"
    def __init__(self, data:bytes, name:str='<bytes>'):
        self.data, self.pos, self.name = memoryview(data), 0, name

    def fail(self, what:str):
        raise DlibFormatError(f'{self.name}: byte {self.pos}: {what}')

    def _take(self, n:int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data): self.fail(f'the file ends inside a value ({n} bytes wanted, {len(self.data)-self.pos} left)')
        out = self.data[self.pos:self.pos+n]; self.pos += n
        return out

    def int(self) -> int:
        "A signed or unsigned integer (dlib's `pack_int`)"
        ctrl = self._take(1)[0]
        size = ctrl & 0x0F
        if size == 0 or size > 8 or ctrl & 0x70: self.fail(f'not an integer (control byte {ctrl:#04x})')
        v = int.from_bytes(self._take(size), 'little')
        return -v if ctrl & 0x80 else v

    def bool(self) -> bool:
        c = bytes(self._take(1))
        if c not in (b'0', b'1'): self.fail(f'not a bool ({c!r})')
        return c == b'1'

    def float(self) -> float:
        "A float written portably (dlib's `float_details`: mantissa * 2**exponent)"
        mantissa, exponent = self.int(), self.int()
        if exponent == 32000: return math.inf
        if exponent == 32001: return -math.inf
        if exponent == 32002: return math.nan
        if not -1100 <= exponent <= 1100: self.fail(f'float exponent {exponent} out of range')
        return math.ldexp(mantissa, exponent)

    def str(self, limit:int=256) -> str:
        n = self.int()
        if not 0 <= n <= limit: self.fail(f'a string of {n} bytes where a name of at most {limit} was expected')
        try: return bytes(self._take(n)).decode('ascii')
        except UnicodeDecodeError: self.fail('a name that is not ASCII')

    def expect_int(self, what:str, allowed) -> int:
        v = self.int()
        if v not in allowed: self.fail(f'{what}: {v}, expected {" or ".join(map(str, allowed))}')
        return v

    def dims(self) -> tuple:
        d = tuple(self.int() for _ in range(4))
        if any(x < 0 for x in d) or math.prod(d) > _MAX_TENSOR: self.fail(f'tensor dimensions {d} out of range')
        return d

    def tensor(self) -> np.ndarray:
        "A `resizable_tensor`: (num_samples, k, nr, nc) float32"
        self.expect_int('tensor version', (2,))
        d = self.dims()
        vals = np.frombuffer(self._take(4*math.prod(d)), dtype='<f4').astype(np.float32)
        return vals.reshape(d)

    def alias(self) -> tuple:
        "An `alias_tensor`: only its dimensions (it names a part of a layer's `params`)"
        self.expect_int('alias_tensor version', (1,))
        return self.dims()

@dataclass
class DlibLayer:
    "One layer read from a dlib network: its kind, hyper-parameters and tensors (numpy float32)"
    kind:str # 'con', 'affine', 'relu', 'max_pool', 'avg_pool', 'fc', 'add_prev', 'input_rgb'
    hp:dict = field(default_factory=dict)
    tensors:dict = field(default_factory=dict)

def _split(r, params, *shapes):
    "`params` (one flat tensor) cut into the alias tensors of `shapes`, in order, all of it used"
    flat, out, at = params.reshape(-1), [], 0
    for s in shapes:
        n = math.prod(s); out.append(flat[at:at+n].reshape(s)); at += n
    if at != flat.size: r.fail(f'a layer holds {flat.size} parameters, its parts {at}')
    return out

def _con(r, version):
    if version not in ('con_4', 'con_5', 'con_6'): r.fail(f'convolution version {version!r}')
    params = r.tensor()
    hp = dict(num_filters=r.int(), nr=r.int(), nc=r.int(), stride_y=r.int(), stride_x=r.int(), padding_y=r.int(), padding_x=r.int())
    filters, biases = r.alias(), r.alias()
    for _ in range(4): r.float()   # learning-rate and weight-decay multipliers
    hp['use_bias'] = r.bool() if version in ('con_5', 'con_6') else True
    if version == 'con_6': r.bool()   # use_relu (a fused activation dlib applies only when set by `fuse_layers`)
    w, b = _split(r, params, filters, biases)
    if filters[0] != hp['num_filters'] or filters[2:] != (hp['nr'], hp['nc']): r.fail(f'convolution filters {filters} for {hp}')
    return DlibLayer('con', hp, dict(weight=w, bias=b.reshape(-1)))

def _affine(r, version):
    if version in ('bn_con2', 'bn_fc2'): r.fail(f'a batch-norm layer ({version!r}) where the inference network has an affine layer: '
                                                 'a training-time network file, not one this reader takes')
    if version not in ('affine_', 'affine_2'): r.fail(f'affine version {version!r}')
    params = r.tensor()
    gamma, beta = r.alias(), r.alias()
    mode = r.int()
    if mode != 0: r.fail(f'affine layer mode {mode}: a per-channel (convolution mode, 0) layer was expected')
    disabled = r.bool() if version == 'affine_2' else False
    if disabled: r.fail('a disabled affine layer (not a network this reader knows)')
    g, b = (x.reshape(-1) for x in _split(r, params, gamma, beta))
    return DlibLayer('affine', {'mode': mode}, dict(gamma=g, beta=b))

def _relu(r, version):
    if version == 'relu_2':
        if r.bool(): r.fail('a disabled relu layer')
    elif version != 'relu_': r.fail(f'relu version {version!r}')
    return DlibLayer('relu')

def _pool(kind):
    def read(r, version):
        if version != f'{kind}_2': r.fail(f'{kind} version {version!r}')
        return DlibLayer(kind, dict(nr=r.int(), nc=r.int(), stride_y=r.int(), stride_x=r.int(), padding_y=r.int(), padding_x=r.int()))
    return read

def _fc(r, version):
    if version not in ('fc_2', 'fc_3'): r.fail(f'fc version {version!r}')
    n_out, n_in = r.int(), r.int()
    params = r.tensor()
    weights, biases = r.alias(), r.alias()
    bias_mode = r.int()
    for _ in range(4): r.float()
    use_bias = r.bool() if version == 'fc_3' else True
    has_bias = bias_mode == 0 and use_bias
    if weights != (n_in, n_out, 1, 1): r.fail(f'fc weights {weights} for {n_in} inputs, {n_out} outputs')
    w, b = _split(r, params, weights, biases if has_bias else (0,))
    t = dict(weight=w.reshape(n_in, n_out).T.copy())   # dlib computes x @ W (inputs x outputs); torch's Linear holds W.T
    if has_bias: t['bias'] = b.reshape(-1)
    return DlibLayer('fc', dict(n_in=n_in, n_out=n_out, bias=has_bias), t)

def _add_prev(r, version):
    if version != 'add_prev_': r.fail(f'add_prev version {version!r}')
    return DlibLayer('add_prev')

_DETAILS = {'con': _con, 'affine': _affine, 'relu': _relu, 'max_pool': _pool('max_pool'), 'avg_pool': _pool('avg_pool'),
            'fc': _fc, 'add_prev': _add_prev}

def _input_rgb(r):
    version = r.str()
    if version != 'input_rgb_image_sized': r.fail(f'input layer {version!r}, expected input_rgb_image_sized')
    mean = [r.float() for _ in range(3)]
    nr, nc = r.int(), r.int()
    return DlibLayer('input_rgb', dict(mean=mean, nr=nr, nc=nc))

def _state(r, version):
    "What an `add_layer` writes after its details: flags and training buffers (checked, then dropped)"
    for _ in range(3): r.bool()
    r.tensor(); r.tensor()            # x_grad, cached_output
    if version >= 2: r.tensor()       # params_grad

def read_network(
    data:bytes, # the file's bytes
    loss:str, # the loss layer's name as dlib writes it, without version digits ('loss_metric_')
    nesting:list, # outer to inner: a layer kind ('con', 'affine', ...), or 'tag' / 'skip' for dlib's tag and skip layers
    name:str='<bytes>', # the file, for errors
) -> tuple[DlibLayer, list[DlibLayer]]:
    """The input layer and the layers of a dlib network, inner to outer (the order data flows), from the bytes dlib's
    `serialize(net)` wrote. The innermost entry of `nesting` is the layer on the input."""
    r = DlibReader(data, name)
    r.expect_int('loss layer version', (1,))
    version = r.str()
    if not version.startswith(loss): r.fail(f'loss layer {version!r}, expected {loss}')
    if version.endswith('2'): r.float(); r.float()   # margin, distance threshold (training only)
    versions = []
    for i, kind in enumerate(nesting):
        innermost = i == len(nesting) - 1
        if kind in ('tag', 'skip'): versions.append(r.expect_int(f'{kind} version', (1,)))
        else: versions.append(r.expect_int(f'layer {len(nesting)-i} ({kind}) version', (2, 3) if innermost else (1, 2)))
    inp = _input_rgb(r)
    layers = []
    for kind, version in zip(reversed(nesting), reversed(versions)):
        if kind in ('tag', 'skip'): continue
        details = r.str()
        layers.append(_DETAILS[kind](r, details))
        if layers[-1].kind != kind: r.fail(f'found {details!r} where the network has a {kind} layer')
        if len(layers) == 1:   # the layer on the input: add_layer's input specialisation
            for _ in range(3): r.bool()
            r.tensor(); r.tensor(); r.tensor()
            if version >= 3: r.int()
        else: _state(r, version)
    if r.pos != len(r.data): r.fail(f'{len(r.data) - r.pos} bytes left after the network')
    return inp, layers
