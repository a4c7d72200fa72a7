"""Deployment without pickle: `save_model` writes the weights as safetensors plus a small JSON that rebuilds the model
and its image preparation; `load_model` reads them back into a Learner without training data. `export_onnx` writes
the encoder (and the pair head, where it has weights) as ONNX graphs with a dynamic batch axis."""
import errno, hashlib, json, os
from pathlib import Path
import torch
from .data.pairs import SiameseDataLoaders, IMAGE_MODES
from .data.episode_loaders import EpisodeDataLoaders
from .models.registry import create_encoder, encoder_features, encoder_kwargs_error, current_encoder_kwargs, known_arch
from .models.heads import HEADS, create_pair_head
from .models.siamese import SiameseModel, siamese_splitter
from .models.protonet import ProtoNet
from .methods import list_methods
from .losses import pair_loss
from .learner import SiameseLearner, EpisodicLearner
from .inference import SupportSet, tta_from_spec
from .verification.whitening import Whitening
from .config import ModelConfig, model_config
from ._distrib import unwrap_model, is_main_process, plain_dl
from ._files import replacing_folder, replacing_file
from ._checks import MAX_SIZE, MAX_PARAMS

__all__ = ['save_model', 'load_model', 'export_onnx']

FORMAT = 'fewshot_fastai/1'
LOADERS = {'siamese': SiameseDataLoaders, 'episodic': EpisodeDataLoaders}   # the kind of a saved learner -> its loaders

def save_model(
    learn, # a siamese or episodic learner
    path, # a folder: model.safetensors + config.json go there
    support:SupportSet|None=None, # a `SupportSet` whose labels are saved with the model
) -> Path:
    """Weights (safetensors) and a JSON of what rebuilds the model and its inference configuration: arch, head, sizes,
    channels, image preparation (normalisation, ink centring), test-time augmentation and whitening (a recipe's), the
    contrastive calibration, and the labels of a `support` set (stored with it).
    Written from rank 0 only under DDP. -> the folder"""
    from safetensors.torch import save_file
    cfg = model_config(learn)
    if cfg is None: raise ValueError('save_model: this Learner was not made by ff.siamese_learner / ff.episodic_learner')
    if cfg.members:
        raise ValueError('save_model: an ensemble; save each member with ff.save_model and rebuild it with '
                         'ff.ensemble_learner([ff.load_model(d) for d in folders])')
    if cfg.arch is None:
        raise ValueError('save_model: the encoder was passed as a module, not a name; JSON cannot rebuild it (use learn.export)')
    path = Path(path)
    if cfg.tta is not None: tta_from_spec(cfg.tta)   # refuse a spec that load_model could not apply
    config = dict(format=FORMAT, **cfg.to_json(), image=learn.dls.image_prep())
    lf = learn.loss_func
    if cfg.kind == 'siamese' and cfg.head == 'contrastive':
        config['calibration'] = dict(thresh=float(lf.thresh), scale=float(lf.scale), calibrated=bool(lf.calibrated))
    model = unwrap_model(learn.model)
    if getattr(model, 'whitening', None) is not None: config['whitening'] = len(model.whitening.mean)
    tensors = {f'model.{k}': v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if support is not None:
        emb = support.emb   # one snapshot: labels and embeddings of the same moment
        config['support_labels'] = [str(l) for l in emb]
        config['support_mode'] = support.method
        tensors.update({f'support.{i}': e.detach().cpu().contiguous() for i, e in enumerate(emb.values())})
    if not is_main_process(): return path
    # the folder as a whole, all-or-nothing: weights and config always belong together (and the config names the
    # weights' digest, so that a mixture could not load silently)
    with replacing_folder(path, keep=_model_file) as tmp:
        try: save_file(tensors, str(tmp/'model.safetensors'), metadata={'format': FORMAT})
        except Exception as e:   # safetensors reports the OS's errors (a full disk...) as its own type: as the OSError they are
            if type(e).__name__ != 'SafetensorError': raise
            code = errno.ENOSPC if 'os error 28' in str(e) else errno.EIO
            raise OSError(code, os.strerror(code), str(tmp/'model.safetensors')) from None
        config['weights_sha256'] = hashlib.sha256((tmp/'model.safetensors').read_bytes()).hexdigest()
        (tmp/'config.json').write_text(json.dumps(config, indent=1))
    return path

def _model_file(name:str) -> bool:
    "Files of a saved model folder (a new save replaces them all): its config, weights and ONNX exports"
    return name in ('config.json', 'model.safetensors') or name.endswith('.onnx')

MAX_CONFIG_BYTES = 1 << 20   # a config.json is a few kB
MAX_WEIGHTS_BYTES = 4*MAX_PARAMS + (64 << 20)   # the largest model a file may describe, plus a support set

def _read_member(fd:int, folder:Path, name:str, limit:int) -> bytes:
    """The bytes of regular file `name` in the folder open as `fd`: never through a symbolic link (which could lead out of
    the folder), never a FIFO or device (which could block or never end), never more than `limit` bytes"""
    import stat
    try: f = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    except OSError as e:
        if e.errno == errno.ELOOP: raise ValueError(f'{folder/name}: a symbolic link; a model folder holds its own files') from None
        if e.errno == errno.ENOENT: raise FileNotFoundError(name) from None
        raise
    st = os.fstat(f)
    if not stat.S_ISREG(st.st_mode):
        os.close(f)
        raise ValueError(f'{folder/name}: not a regular file (a folder, FIFO or device); a model folder holds its own files')
    with os.fdopen(f, 'rb') as fh:
        if st.st_size > limit: raise ValueError(f'{folder/name}: {st.st_size:,} bytes, more than the {limit:,} a model file may have')
        data = fh.read(limit + 1)
    if len(data) > limit: raise ValueError(f'{folder/name}: more than the {limit:,} bytes a model file may have')
    return data

def _read_folder(path:Path) -> tuple[bytes, bytes]:
    """The bytes of `config.json` and `model.safetensors`, both read through one handle on the folder, so that a save
    swapping the folder meanwhile cannot give the config of one version and the weights of another"""
    for attempt in range(5):
        try: fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError: raise FileNotFoundError(f'{path}: no such model folder') from None
        except NotADirectoryError: raise NotADirectoryError(f'{path}: not a folder (ff.save_model writes a folder)') from None
        try:
            return (_read_member(fd, path, 'config.json', MAX_CONFIG_BYTES),
                    _read_member(fd, path, 'model.safetensors', MAX_WEIGHTS_BYTES))
        except FileNotFoundError as e:
            name = e.args[0] if e.args else 'config.json'
            if attempt == 4 or not (path/name).exists():
                raise FileNotFoundError(f'{path/name}: missing; is {path} a folder written by ff.save_model?') from None
        finally: os.close(fd)   # the folder was replaced while we read (its old version removed): read the new one
    raise AssertionError('unreachable')

def _field(cfg_file, config:dict, key:str, kind, check=None, what:str='', optional=False):
    "config[key], of type `kind` and passing `check`, or a ValueError naming the file and the field"
    if key not in config:
        if optional: return None
        raise ValueError(f'{cfg_file}: missing field {key!r}')
    v = config[key]
    if not isinstance(v, kind) or isinstance(v, bool) and kind in (int, float, (int, float)) or (check is not None and not check(v)):
        raise ValueError(f'{cfg_file}: field {key!r} = {json.dumps(v)[:80]}: expected {what or getattr(kind, "__name__", kind)}')
    return v

def _small_json(v, depth:int=0) -> bool:
    "Plain JSON values that cannot ask for a huge model: numbers within 1e5, lists of <= 64, strings of <= 200, 3 levels"
    if depth > 3: return False
    if v is None or isinstance(v, bool): return True
    if isinstance(v, (int, float)): return abs(v) <= 1e5
    if isinstance(v, str): return len(v) <= 200
    if isinstance(v, list): return len(v) <= 64 and all(_small_json(x, depth + 1) for x in v)
    if isinstance(v, dict): return len(v) <= 64 and all(isinstance(k, str) and _small_json(x, depth + 1) for k, x in v.items())
    return False

def _checked_config(cfg_file:Path, raw:bytes) -> dict:
    "The config of a saved model, parsed and checked field by field: a model file is data, never instructions"
    try: config = json.loads(raw, parse_constant=lambda c: _no_constant(cfg_file, c))
    except RecursionError: raise ValueError(f'{cfg_file}: nested too deeply to be a model config') from None
    except (ValueError, UnicodeDecodeError) as e: raise ValueError(f'{cfg_file}: not valid JSON ({str(e)[:120]})') from None
    if not isinstance(config, dict): raise ValueError(f'{cfg_file}: not a JSON object')
    if config.get('format') != FORMAT: raise ValueError(f'{cfg_file}: format {config.get("format")!r}, expected {FORMAT!r}')
    f = lambda *a, **k: _field(cfg_file, config, *a, **k)
    f('kind', str, lambda v: v in ('siamese', 'episodic'), "'siamese' or 'episodic'")
    f('arch', str, known_arch, 'an encoder name of our registry (ours, torchvision, or a timm name installed here)')
    f('n_in', int, lambda v: 1 <= v <= 4, 'an int of 1 to 4 channels')
    f('size', list, lambda v: len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool) and 8 <= x <= MAX_SIZE for x in v),
      f'[rows, columns], ints in 8..{MAX_SIZE}')
    f('encoder_kwargs', dict, _small_json, 'an object of small plain values (numbers within 1e5, short lists and strings)')
    config['encoder_kwargs'] = current_encoder_kwargs(config['arch'], config['encoder_kwargs'])
    if (why := encoder_kwargs_error(config['arch'], config['encoder_kwargs'])): raise ValueError(f"{cfg_file}: field 'encoder_kwargs': {why}")
    f('image', dict, lambda v: v.get('mode') in IMAGE_MODES, "an object whose 'mode' is 'L' or 'RGB'")
    if config['kind'] == 'siamese':
        f('head', str, lambda v: v in HEADS, f'one of {list(HEADS)}')
        f('emb_dim', int, lambda v: 1 <= v <= 65536, 'an int in 1..65536')
        f('margin', (int, float), lambda v: 0 < v < 1e6, 'a number > 0')
    else:
        f('pool', str, lambda v: v in ('avg', 'flatten'), "'avg' or 'flatten'")
        f('model_kwargs', dict, _small_json, 'an object of small plain values', optional=True)
        f('whitening', int, lambda v: 1 <= v <= 65536, 'an embedding size in 1..65536', optional=True)
    if f('tta', (dict, type(None)), optional=True):
        try: tta_from_spec(config['tta'])
        except ValueError as e: raise ValueError(f'{cfg_file}: field \'tta\': {e}') from None
    if config['kind'] == 'siamese' and f('calibration', dict, optional=True) is not None:
        c = config['calibration']
        for k in ('thresh', 'scale'):
            v = c.get(k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not abs(v) < 1e30:
                raise ValueError(f"{cfg_file}: field 'calibration.{k}' = {json.dumps(v)[:40]}: expected a finite number")
        if not isinstance(c.get('calibrated'), bool): raise ValueError(f"{cfg_file}: field 'calibration.calibrated': expected true or false")
    f('support_labels', list, lambda v: all(isinstance(l, str) for l in v) and len(set(v)) == len(v),
      'a list of distinct strings', optional=True)
    f('support_mode', str, lambda v: v in list_methods(), f"a registered classifier ({', '.join(list_methods())})", optional=True)
    f('weights_sha256', str, optional=True)
    return config

def _no_constant(cfg_file, c):
    raise ValueError(f'{c} is not a number a model config may hold')

def _build(config:dict, n_in:int, size:tuple):
    "The model and its loss that `config` describes (on the current default device: 'meta' to count parameters only)"
    encoder = create_encoder(config['arch'], n_in=n_in, pretrained=False, **config['encoder_kwargs'])
    if config['kind'] == 'siamese':
        nf, maps = encoder_features(encoder, n_in, size)
        head = config['head']
        return SiameseModel(encoder, create_pair_head(head, nf, maps, config['emb_dim'])), pair_loss(head, config['margin'])
    from fastai.losses import CrossEntropyLossFlat
    model = ProtoNet(encoder, config['pool'], **config.get('model_kwargs', {}))
    if 'whitening' in config:   # buffers of the saved shape; load_state_dict fills them
        d = config['whitening']
        model.whitening = Whitening(torch.zeros(d), torch.zeros(d, d))
    return model, CrossEntropyLossFlat()

def load_model(
    path, # a folder written by `save_model`
):
    """A Learner without training data from a `save_model` folder, rebuilt from its JSON with no unpickling and no
    network access (only encoder names of our registry): `predict`, `ff.predict_pair`, `ff.classify`, `ff.cam` and
    `ff.SupportSet` accept it. A stored support set comes back as `learn.support_set`. Errors name the file and field."""
    from safetensors.torch import load as load_bytes
    path = Path(path)
    cfg_file, weights = path/'config.json', path/'model.safetensors'
    raw_cfg, raw_w = _read_folder(path)
    config = _checked_config(cfg_file, raw_cfg)
    if config.get('weights_sha256') and hashlib.sha256(raw_w).hexdigest() != config['weights_sha256']:
        raise ValueError(f'{weights}: does not match {cfg_file} (its digest differs: the two files come from different saves)')
    try: tensors = load_bytes(raw_w)
    except Exception as e: raise ValueError(f'{weights}: not a readable safetensors file ({str(e)[:120]})') from None
    n_in, size = config['n_in'], tuple(config['size'])
    bad = [k for k, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad: raise ValueError(f'{weights}: tensor {bad[0]!r} holds NaN or infinite values' + (f' ({len(bad)} such tensors)' if len(bad) > 1 else ''))
    try:
        with torch.device('meta'): n_params = sum(p.numel() for p in _build(config, n_in, size)[0].parameters())   # nothing allocated
        if n_params > MAX_PARAMS:
            raise ValueError(f'{cfg_file}: describes a model of {n_params:,} parameters, more than the {MAX_PARAMS:,} a model file may ask for')
        model, loss = _build(config, n_in, size)
        if config['kind'] == 'siamese':
            if 'calibration' in config:
                c = config['calibration']
                loss.thresh, loss.scale, loss.calibrated = float(c['thresh']), float(c['scale']), bool(c['calibrated'])
            make = SiameseLearner
        else: make = EpisodicLearner
        # the checked `size` field, whatever the record says (they are equal in a file save_model wrote)
        dls = LOADERS[config['kind']].from_image_prep({**config['image'], 'size': list(size)})
    except (TypeError, ValueError, KeyError, RuntimeError) as e:
        raise ValueError(f'{cfg_file}: cannot build the model it describes ({str(e).splitlines()[0][:160]})') from None
    try: model.load_state_dict({k[len('model.'):]: v for k, v in tensors.items() if k.startswith('model.')})
    except RuntimeError as e:
        first = next((l.strip() for l in str(e).splitlines()[1:] if l.strip()), str(e))
        raise ValueError(f'{weights}: its tensors do not fit the model {cfg_file} describes ({first[:160]})') from None
    kw = dict(splitter=siamese_splitter) if config['kind'] == 'siamese' else {}
    learn = make(dls, model.to(dls.device), loss_func=loss, metrics=[], **kw)
    learn.model_config = ModelConfig.from_json(config)
    if 'support_labels' in config:
        labels = config['support_labels']
        missing = [i for i in range(len(labels)) if f'support.{i}' not in tensors]
        if missing: raise ValueError(f'{weights}: no tensor support.{missing[0]} for support label {labels[missing[0]]!r} of {cfg_file}')
        ss = SupportSet(learn, method=config.get('support_mode', 'mean'))
        ss.emb = {l: tensors[f'support.{i}'].to(dls.device) for i, l in enumerate(labels)}
        learn.support_set = ss
    return learn

class _Encode(torch.nn.Module):
    "The encoder half of a few-shot model: images -> embeddings (`model.encode`, then the model's whitening if it has one)"
    def __init__(self, model): super().__init__(); self.model = model
    def forward(self, x):
        e, white = self.model.encode(x), getattr(self.model, 'whitening', None)
        return white(e) if white is not None else e

class _Compare(torch.nn.Module):
    "The pair head: two embeddings -> its output (logits or distances)"
    def __init__(self, model): super().__init__(); self.model = model
    def forward(self, ea, eb): return self.model.compare(ea, eb)

def export_onnx(
    learn, # a siamese or episodic learner
    path, # the encoder .onnx file (the head goes beside it)
    opset:int=17, # ONNX opset version
) -> list[Path]:
    """The encoder as ONNX (input `images`, a batch prepared as `ff.inference.image_batch` prepares it, output
    `embeddings`, dynamic batch axis), and for pair heads with weights (L1, concat, cosine) the head as a second
    graph `{stem}_head.onnx` (inputs `ea`, `eb`). -> the files written"""
    model = unwrap_model(learn.model)
    cfg = model_config(learn)
    c = getattr(cfg, 'n_in', None) or next(p for p in model.parameters() if p.ndim == 4).shape[1]
    size = getattr(cfg, 'size', None) or list(plain_dl(learn.dls.valid).one_batch()[0].shape[-2:])
    dev = next(model.parameters()).device
    x = torch.zeros(2, c, *size, device=dev)
    path, out = Path(path), []
    path.parent.mkdir(parents=True, exist_ok=True)
    was = model.training
    model.eval()
    try:
        enc = _Encode(model).eval()
        with torch.no_grad(): e = enc(x)
        with replacing_file(path) as tmp:   # all-or-nothing, as every file we write
            torch.onnx.export(enc, (x,), str(tmp), input_names=['images'], output_names=['embeddings'], opset_version=opset,
                              dynamic_axes={'images': {0: 'batch'}, 'embeddings': {0: 'batch'}}, dynamo=False)
        out.append(path)
        head = getattr(model, 'head', None)
        if head is not None and any(True for _ in head.parameters()) and not isinstance(head, HEADS['contrastive']):
            hp = path.with_name(f'{path.stem}_head.onnx')
            with replacing_file(hp) as tmp:
                torch.onnx.export(_Compare(model).eval(), (e, e), str(tmp), input_names=['ea', 'eb'], output_names=['out'],
                                  opset_version=opset, dynamic_axes={'ea': {0: 'batch'}, 'eb': {0: 'batch'}, 'out': {0: 'batch'}},
                                  dynamo=False)
            out.append(hp)
    finally: model.train(was)
    return out
