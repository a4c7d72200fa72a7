"""`TapGrid`: mid-level features of a CNN, tapped with torchvision's feature extraction and pooled on a coarse grid."""
import torch
from torch import nn

__all__ = ['TapGrid']

class TapGrid(nn.Module):
    """Mid-level features of a CNN: the outputs of its layers named in `taps`, each average-pooled to a coarse `grid`
    and flattened, side by side: (B,C,H,W) -> (B, sum of C_i*gh*gw) vectors. An ImageNet network's middle stages
    describe parts (eyes, mouth, textures) that transfer to new identities better than its last, ImageNet-specific
    stage, and the grid keeps where each part is (aligned faces). torchvision's `create_feature_extractor` (torch.fx)
    does the tapping and keeps only the computation the taps need; the grid pooling is the part written here."""
    def __init__(
        self,
        model:nn.Module, # the network to tap (e.g. timm's efficientnet_lite0)
        taps, # names of its layers, as `torchvision.models.feature_extraction.get_graph_node_names` lists them ('blocks.4')
        grid=(3, 3), # (rows, columns) each tapped map is pooled to
    ):
        super().__init__()
        from torchvision.models.feature_extraction import get_graph_node_names
        taps = [taps] if isinstance(taps, str) else list(taps)
        grid = (grid, grid) if isinstance(grid, int) else tuple(grid)
        if not taps: raise ValueError('TapGrid: taps is empty: name at least one layer')
        if len(grid) != 2 or any(not isinstance(g, int) or g < 1 for g in grid):
            raise ValueError(f'TapGrid: grid={grid} must be (rows, columns), positive integers')
        # a tap names a graph node or a module (whose last node is then tapped), in training and eval mode alike
        names = [set(n) for n in get_graph_node_names(model)]
        bad = [t for t in taps if not all(t in n or any(m.startswith(t + '.') for m in n) for n in names)]
        if bad:
            some = [n for n, _ in model.named_modules() if n and n.count('.') <= 1]
            raise ValueError(f'TapGrid: {type(model).__name__} has no layer {bad}; some of its layers: {some[:30]}')
        self.taps, self.grid, self.model = taps, grid, model
        self._trace()
    def _trace(self):
        # The fx module shares the model's layers (and so its parameters and buffers) but is kept out of the registered
        # submodules: pickled (fastai's `export`), a torchvision DualGraphModule keeps only the graph of the mode it was
        # in and silently runs training-mode BatchNorm afterwards; so `model` is what is saved, and this is re-traced.
        from torchvision.models.feature_extraction import create_feature_extractor
        self.__dict__['body'] = create_feature_extractor(self.model, return_nodes={t: f'tap{i}' for i, t in enumerate(self.taps)})
        self.body.train(self.training)
    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != 'body'}
    def __setstate__(self, state):
        self.__dict__.update(state)
        self._trace()
    def train(
        self,
        mode:bool=True, # training mode (False: eval)
    ):
        "As `nn.Module.train`, also switching the traced graph between its training and eval versions"
        super().train(mode)
        self.body.train(mode)
        return self
    def forward(
        self,
        x, # images, (B,C,H,W)
    ):
        "(B, sum over the taps of channels*rows*columns)"
        return self.from_maps(self.tap_maps(x))
    def tap_maps(
        self,
        x, # images, (B,C,H,W)
    ) -> list:
        "The tapped layers' feature maps [(B,C_i,H_i,W_i)], in `taps` order (what a CAM of this encoder explains)"
        maps = list(self.body(x).values())
        for name, m in zip(self.taps, maps):
            if m.ndim != 4: raise ValueError(f'TapGrid: layer {name!r} gives a tensor of shape {tuple(m.shape)}, not feature maps (B,C,H,W)')
        return maps
    def from_maps(
        self,
        maps:list, # `tap_maps(x)`
    ) -> torch.Tensor:
        "The vectors of `forward` from the tapped maps"
        return torch.cat([_grid_pool(m, self.grid).flatten(1) for m in maps], 1)

def _bins(n:int, g:int, like:torch.Tensor) -> torch.Tensor:
    "(g,n) matrix whose row i averages positions floor(i*n/g) .. ceil((i+1)*n/g)-1: adaptive average pooling's bins"
    # from Python ints, so that a trace (torch.onnx) keeps it as a constant
    edges = [(i*n//g, -(-(i + 1)*n//g)) for i in range(g)]
    return torch.tensor([[1/(e - s) if s <= p < e else 0. for p in range(n)] for s, e in edges], dtype=like.dtype, device=like.device)

def _grid_pool(m:torch.Tensor, grid) -> torch.Tensor:
    """`adaptive_avg_pool2d(m, grid)` as two matrix products over the same bins: torch.onnx cannot export adaptive
    pooling when the grid does not divide the map (7x6 -> 3x3), and a bin's mean is its rows' mean of its columns' mean"""
    H, W = m.shape[-2:]
    return _bins(H, grid[0], m) @ m @ _bins(W, grid[1], m).T
