"""The CAM family on one base. `BaseCAM` owns the hooks on the explained layer(s) — registered for one pass and removed
on exit, even after an error — runs the forward (and, for gradient methods, backward) pass of a *target score*, and
turns each layer's activations into a signed map; every method is a small subclass that overrides one weighting:

| method | map at a layer with activations A (K channels) and gradients G of the target score |
|---|---|
| `grad-cam` (Selvaraju 2017) | sum_k mean(G_k) A_k |
| `hires-cam` (Draelos 2020) | sum_k G_k * A_k (element-wise) |
| `grad-cam++` (Chattopadhay 2018) | sum_k w_k A_k, w_k = sum a_k relu(G_k), a_k = G_k^2 / (2 G_k^2 + sum(A_k) G_k^3) |
| `xgrad-cam` (Fu 2020) | sum_k w_k A_k, w_k = sum(G_k A_k) / sum(A_k) |
| `layer-cam` (Jiang 2021) | sum_k relu(G_k) * A_k; several layers fused |
| `eigen-cam` (Muhammad 2020) | projection of A on its first principal component (no gradients), oriented with sum_k A_k |
| `eigen-grad-cam` | projection of G * A on its first principal component, oriented with sum_k G_k A_k |
| `score-cam` (Wang 2020) | sum_k w_k A_k, w = softmax over k of the score of the input masked by A_k (batched) |
| `ablation-cam` (Desai 2020) | sum_k w_k A_k, w_k = (s - s_k) / s, s_k the score with channel k zeroed (batched) |

The target score is a function of the explained network's output: a class logit for classifiers, the similarity to a
fixed embedding for pairs (`ff.similarity_maps`) and support sets (a class prototype). `eigen_smooth` replaces a
method's weighted sum by the first principal component of its weighted activations; `aug_smooth` averages the maps of
six views (mirror x brightness 0.9, 1, 1.1), each mapped back. Transformer token outputs ((B, N, C) of timm ViT / DeiT,
(B, H, W, C) of Swin) are reshaped to maps from the model (its patch grid and prefix tokens) by `token_reshape`."""
import math
from dataclasses import dataclass
import torch
import torch.nn.functional as F
from torch import nn
from .maps import normalize_maps, _forward_with_map

__all__ = ['LayerPass', 'BaseCAM', 'GradCAM', 'HiResCAM', 'GradCAMPlusPlus', 'XGradCAM', 'LayerCAM', 'EigenCAM', 'EigenGradCAM',
           'ScoreCAM', 'AblationCAM', 'CAM_METHODS', 'principal_projection', 'token_reshape', 'default_cam_layers']

CAM_METHODS = {}   # method name -> BaseCAM subclass

def _register(cls):
    CAM_METHODS[cls.name] = cls
    return cls

def principal_projection(
    m:torch.Tensor, # weighted activations, (B,K,h,w)
) -> torch.Tensor:
    """(B,h,w): each map's positions projected on the first principal component of its K-channel vectors (centred over
    the positions), oriented so that it agrees with the channels' sum `m.sum(1)`. A principal component's sign is
    arbitrary (the reference implementations keep whichever LAPACK returns, so that a map may come out with the object
    negative and the ReLU then leaves the background); oriented, the map is positive where the layer's evidence is."""
    B, K, h, w = m.shape
    X = torch.nan_to_num(m.detach().float()).flatten(2).transpose(1, 2)        # (B, hw, K)
    X = X - X.mean(1, keepdim=True)
    _, _, Vh = torch.linalg.svd(X, full_matrices=False)    # batched
    p = (X @ Vh[:, 0, :, None])[..., 0]                    # (B, hw)
    ref = torch.nan_to_num(m.detach().float()).sum(1).flatten(1)
    sign = torch.where(((p - p.mean(1, keepdim=True))*(ref - ref.mean(1, keepdim=True))).sum(1) < 0, -1., 1.)
    return (p*sign[:, None]).view(B, h, w)

def token_reshape(
    model:nn.Module, # the model the layer belongs to (timm ViT / DeiT / Swin read their patch grid from it)
    t:torch.Tensor, # a layer's output
) -> torch.Tensor:
    """A layer's output as maps (B,C,h,w): (B,C,h,w) as it is; transformer tokens (B,N,C) without their prefix (class,
    distillation) tokens on the model's patch grid; Swin's channels-last (B,H,W,C) moved to channels first"""
    if t.ndim == 4:
        n_feat = getattr(model, 'num_features', None)
        if n_feat is not None and t.shape[-1] == n_feat and t.shape[1] != n_feat: return t.permute(0, 3, 1, 2)   # NHWC (Swin)
        return t
    if t.ndim != 3: raise ValueError(f'cam: a layer output of shape {tuple(t.shape)}: expected maps (B,C,h,w) or tokens (B,N,C)')
    B, N, C = t.shape
    pe = getattr(model, 'patch_embed', None)
    grid = tuple(getattr(pe, 'grid_size', ()) or ())
    prefix = getattr(model, 'num_prefix_tokens', None)
    if len(grid) == 2 and prefix is None: prefix = N - grid[0]*grid[1]
    if len(grid) != 2:   # a square grid after 0, 1 or 2 prefix tokens
        prefix = next((p for p in (0, 1, 2) if math.isqrt(N - p)**2 == N - p and N > p), None)
        if prefix is None: raise ValueError(f'cam: {N} tokens are no square patch grid (after 0-2 prefix tokens)')
        grid = (math.isqrt(N - prefix),)*2
    if N - prefix != grid[0]*grid[1]:
        raise ValueError(f'cam: {N} tokens, {prefix} prefix: not the {grid[0]}x{grid[1]} patch grid of {type(model).__name__}')
    return t[:, prefix:].reshape(B, grid[0], grid[1], C).permute(0, 3, 1, 2)

def default_cam_layers(
    model:nn.Module, # the network explained
) -> tuple[list, str]:
    """([layers], why) for transformer families (timm ViT / DeiT: the last block's first norm; Swin: the last stage's
    last block's first norm), as their attention-mixed tokens keep a spatial layout there; ([], why) otherwise (the last
    spatial block is found during the pass)"""
    blocks = getattr(model, 'blocks', None)
    if isinstance(blocks, nn.Sequential) and len(blocks) and hasattr(blocks[-1], 'norm1'):
        return [blocks[-1].norm1], f'{type(model).__name__}: blocks[-1].norm1 (tokens before the last attention, on the patch grid)'
    stages = getattr(model, 'layers', None)
    if isinstance(stages, nn.Sequential) and len(stages) and isinstance(getattr(stages[-1], 'blocks', None), nn.Sequential):
        return [stages[-1].blocks[-1].norm1], f'{type(model).__name__}: layers[-1].blocks[-1].norm1 (the last stage, channels last)'
    return [], 'the last block whose output is a spatial map'

@dataclass
class LayerPass:
    "What one explained layer gave in one pass: what a method weighs"
    act:torch.Tensor # the layer's activations as maps, (B,K,h,w), float32
    grad:torch.Tensor|None # the target score's gradients there, (B,K,h,w); None for gradient-free methods
    x:torch.Tensor # the images, (B,C,H,W)
    rows:torch.Tensor # each image's target, as the score understands it, (B,)
    layer:nn.Module # the module explained
    eigen_smooth:bool=False # the first principal component of the weighted activations instead of their sum

class BaseCAM:
    """Activations (and gradients of a target score) of `layers` of `net`, turned into maps: subclasses override
    `channel_weights` (K weights a map) or `layer_map`. Hooks exist only inside a call."""
    name, uses_gradients = '', True
    # (CPU, accelerator) default of `bs`: on 2 CPU cores, measured on ResNet-18 and efficientnet_lite0 at 224 px, Score-CAM's
    # masked images run fastest 8 at a time (memory-bound: 64 at a time took 1.4x (ResNet-18) and 3.0x (efficientnet) as
    # long). The ablations, which only run the layers after the explained one, 128 at a time (ResNet-18's layer4: 16 a
    # pass 0.54 s a map, 128 0.11 s, 256 0.08 s; 128 bounds the memory of copies of larger layers)
    batch = (8, 64)
    def __init__(
        self,
        net:nn.Module, # the network run on the images (a classifier, or a pair model's encoder)
        layers:list, # modules of `net` whose outputs are explained ([]: the last spatial block of each pass)
        score, # (net output, rows) -> (n,) target score of each output row; `rows` index the explained images
        reshape=None, # output -> (B,C,h,w) maps; default: `token_reshape` from `net`
        bs:int|None=None, # masked inputs or ablated activations a forward pass (Score-CAM, Ablation-CAM); default: `batch` for the device
    ):
        self.net, self.layers, self.score = net, list(layers), score
        cpu = next(net.parameters(), torch.zeros(0)).device.type == 'cpu'
        self.bs = bs or self.batch[0 if cpu else 1]
        self.reshape = reshape or (lambda t: token_reshape(net, t))

    def channel_weights(
        self,
        p:LayerPass, # one layer's activations, gradients and images
    ) -> torch.Tensor:
        "(B,K) weights of the layer's K channels"
        raise NotImplementedError

    def layer_map(
        self,
        p:LayerPass, # one layer's activations, gradients and images
    ) -> torch.Tensor:
        "The signed map (B,h,w) of one layer: by default its channels weighted by `channel_weights`, summed (or their first principal component)"
        wa = self.channel_weights(p)[:, :, None, None]*p.act
        return principal_projection(wa) if p.eigen_smooth else wa.sum(1)

    def _capture(self, x:torch.Tensor):
        """One forward pass of `net` with hooks: (output, [raw outputs of the layers, in graph], [their modules]).
        A hooked layer's output goes on as a copy, so an in-place operation later in the model cannot change it."""
        if not self.layers:   # the last module (in execution order) whose output is a spatial map, found in this pass
            out, act, mod = _forward_with_map(self.net, x)
            return out, [act], [mod]
        got = {}
        # The pass runs without a graph up to the first hooked layer, whose output starts it: the layers before it (most of
        # the network) keep no tensors for a backward pass they never take, and the backward stops there
        def swap(m, i, o):
            if isinstance(o, torch.Tensor):
                if self.uses_gradients and not torch.is_grad_enabled():
                    torch.set_grad_enabled(True)   # restored when the pass's `no_grad` block exits
                    o = o.detach().requires_grad_()
                got[m] = o
                return o.clone()
        hooks = [l.register_forward_hook(swap) for l in self.layers]
        try:
            with torch.no_grad(): out = self.net(x)
        finally:
            for h in hooks: h.remove()
        missing = [type(l).__name__ for l in self.layers if l not in got]
        if missing: raise ValueError(f'cam: layer {missing[0]} gave no tensor output in the forward pass')
        return out, [got[l] for l in self.layers], list(self.layers)

    def _raw_maps(self, x:torch.Tensor, rows:torch.Tensor, eigen_smooth:bool=False):
        "([signed maps (B,h,w), one per layer], target scores (B,)), from one forward (and backward) pass"
        with torch.set_grad_enabled(self.uses_gradients):
            out, acts, mods = self._capture(x)
            s = self.score(out, rows)
            grads = (torch.autograd.grad(s.sum(), acts, allow_unused=True) if self.uses_gradients else [None]*len(acts))
        maps = []
        for a, g, mod in zip(acts, grads, mods):
            a = self.reshape(a.detach())
            if self.uses_gradients:
                g = torch.zeros_like(a) if g is None else self.reshape(g)
            maps.append(self.layer_map(LayerPass(a.float(), None if g is None else g.float(), x, rows, mod, eigen_smooth)).detach())
        return maps, s.detach()

    def __call__(
        self,
        x:torch.Tensor, # images (B,C,H,W)
        rows:torch.Tensor|None=None, # which target each image has (an index the `score` understands); default 0..B-1
        eigen_smooth:bool=False, # first principal component of the weighted activations instead of their sum
        aug_smooth:bool=False, # average the maps of mirror x brightness views, each mapped back
    ):
        "-> (maps (B,H,W) in [0,1], signed raw map of the last layer (B,h,w), target scores (B,))"
        rows = torch.arange(len(x), device=x.device) if rows is None else rows
        size = x.shape[-2:]
        if not aug_smooth:
            maps, s = self._raw_maps(x, rows, eigen_smooth)
            return self._fuse(maps, size), maps[-1], s
        views = []
        for flip in (False, True):
            for k in (0.9, 1., 1.1):
                xv = (x.flip(-1) if flip else x)*k
                m, s_v = self._raw_maps(xv, rows, eigen_smooth)
                fused = self._fuse(m, size)
                views.append(fused.flip(-1) if flip else fused)
                if not flip and k == 1.: raw, s = m[-1], s_v
        return normalize_maps(torch.stack(views).mean(0)), raw, s

    @staticmethod
    def _fuse(maps:list, size) -> torch.Tensor:
        "Layers' signed maps -> (B,H,W) in [0,1]: each one's positive part upsampled and scaled, averaged, scaled"
        one = [normalize_maps(F.relu(m), size) for m in maps]
        return one[0] if len(one) == 1 else normalize_maps(torch.stack(one).mean(0))

@_register
class GradCAM(BaseCAM):
    "Channels weighted by their mean gradient"
    name = 'grad-cam'
    def channel_weights(
        self,
        p:LayerPass, # one layer's activations, gradients and images
    ) -> torch.Tensor:
        "(B,K): each channel's mean gradient"
        return p.grad.mean((2, 3))

@_register
class HiResCAM(BaseCAM):
    "Activations times gradients, position by position (faithful to the score for a linear head)"
    name = 'hires-cam'
    def layer_map(
        self,
        p:LayerPass, # one layer's activations, gradients and images
    ) -> torch.Tensor:
        "(B,h,w): gradients times activations, summed over the channels"
        return principal_projection(p.grad*p.act) if p.eigen_smooth else (p.grad*p.act).sum(1)

@_register
class GradCAMPlusPlus(BaseCAM):
    "Positive gradients weighted by the second- and third-order terms of Grad-CAM++"
    name = 'grad-cam++'
    def channel_weights(
        self,
        p:LayerPass, # one layer's activations, gradients and images
    ) -> torch.Tensor:
        "(B,K): sum of alpha * relu(G), alpha = G^2 / (2 G^2 + sum(A) G^3)"
        g, g2 = p.grad, p.grad.pow(2)
        a = g2/(2*g2 + p.act.sum((2, 3), keepdim=True)*g2*g + 1e-6)
        return (torch.where(g != 0, a, torch.zeros_like(a))*F.relu(g)).sum((2, 3))

@_register
class XGradCAM(BaseCAM):
    "Gradients weighted by the activations' share of their channel's sum (axiom-based)"
    name = 'xgrad-cam'
    def channel_weights(
        self,
        p:LayerPass, # one layer's activations, gradients and images
    ) -> torch.Tensor:
        "(B,K): sum of G * A / sum(A)"
        return (p.grad*p.act/(p.act.sum((2, 3), keepdim=True) + 1e-7)).sum((2, 3))

@_register
class LayerCAM(BaseCAM):
    "Positive gradients times activations, position by position; meant for several layers at once (fused)"
    name = 'layer-cam'
    def layer_map(
        self,
        p:LayerPass, # one layer's activations, gradients and images
    ) -> torch.Tensor:
        "(B,h,w): positive gradients times activations, summed over the channels"
        m = F.relu(p.grad)*p.act
        return principal_projection(m) if p.eigen_smooth else m.sum(1)

@_register
class EigenCAM(BaseCAM):
    "The activations' first principal component: no gradients, no target"
    name, uses_gradients = 'eigen-cam', False
    def layer_map(
        self,
        p:LayerPass, # one layer's activations, gradients and images
    ) -> torch.Tensor:
        "(B,h,w): the activations' first principal component"
        return principal_projection(p.act)

@_register
class EigenGradCAM(BaseCAM):
    "The first principal component of gradients times activations"
    name = 'eigen-grad-cam'
    def layer_map(
        self,
        p:LayerPass, # one layer's activations, gradients and images
    ) -> torch.Tensor:
        "(B,h,w): the first principal component of gradients times activations"
        return principal_projection(p.grad*p.act)

@_register
class ScoreCAM(BaseCAM):
    "Channels weighted by the softmax of the scores of the image masked by each (upsampled, min-max scaled) channel"
    name, uses_gradients = 'score-cam', False
    def channel_weights(
        self,
        p:LayerPass, # one layer's activations, gradients and images
    ) -> torch.Tensor:
        "(B,K): softmax over the channels of the scores of the image masked by each"
        act, x, rows = p.act, p.x, p.rows
        B, K = act.shape[:2]
        up = F.interpolate(act, size=x.shape[-2:], mode='bilinear', align_corners=True)
        lo, hi = up.amin((2, 3), keepdim=True), up.amax((2, 3), keepdim=True)
        masks = (up - lo)/(hi - lo + 1e-8)
        scores = torch.empty(B, K, device=act.device)
        with torch.no_grad():
            for b in range(B):
                for i in range(0, K, self.bs):
                    xb = x[b:b+1]*masks[b, i:i+self.bs, None].to(x.dtype)
                    scores[b, i:i+len(xb)] = self.score(self.net(xb), rows[b].expand(len(xb))).float()
        return scores.softmax(1)

@_register
class AblationCAM(BaseCAM):
    """Channels weighted by the relative drop of the score when each is zeroed at the layer: the image goes through the
    layers before it once a batch, and the hook hands the rest of the network one copy of the activations per channel"""
    name, uses_gradients, batch = 'ablation-cam', False, (128, 256)
    def channel_weights(
        self,
        p:LayerPass, # one layer's activations, gradients and images
    ) -> torch.Tensor:
        "(B,K): the relative drop of the score with each channel zeroed"
        act, x, rows, layer = p.act, p.x, p.rows, p.layer
        B, K = act.shape[:2]
        weights = torch.empty(B, K, device=act.device)
        with torch.no_grad():
            s0 = self.score(self.net(x), rows).float()
            for b in range(B):
                for i in range(0, K, self.bs):
                    n = min(self.bs, K - i)
                    def ablate(m, inp, o, i=i, n=n):   # the layer's output for image b: one copy a channel, that one zeroed
                        rep = self.reshape(o)[:1].repeat(n, 1, 1, 1)
                        rep[torch.arange(n), torch.arange(i, i + n)] = 0
                        return _unreshape(rep, o)
                    h = layer.register_forward_hook(ablate)
                    try: s = self.score(self.net(x[b:b+1]), rows[b].expand(n)).float()
                    finally: h.remove()
                    weights[b, i:i+n] = (s0[b] - s)/s0[b]
        return weights

def _unreshape(maps:torch.Tensor, like:torch.Tensor) -> torch.Tensor:
    "Maps (n,C,h,w) back to the layout of the layer's own output `like` (maps, or Swin's channels last)"
    if like.ndim == 4 and like.shape[1:] == maps.shape[1:]: return maps
    if like.ndim == 4 and like.shape[-1] == maps.shape[1]: return maps.permute(0, 2, 3, 1)
    raise ValueError('ablation-cam: layers with token outputs are not ablated (use a gradient method or score-cam)')
