"""The siamese tower of Koch, Zemel & Salakhutdinov (2015), "Siamese Neural Networks for One-shot Image Recognition"."""
import torch
from torch import nn
from .registry import register_encoder
from .._checks import renamed

__all__ = ['koch_net']

def _conv_block(ni, nf, ks, pool=True):
    layers = [nn.Conv2d(ni, nf, ks), nn.ReLU(inplace=True)]
    return layers + [nn.MaxPool2d(2)] if pool else layers

@register_encoder('small')
@renamed(img_size='size', n_embed='emb_dim')
def koch_net(n_in:int=1, # input channels
             size:int=105, # side of the (square) input images
             width:float=1.0, # channel multiplier of the paper's 64-128-128-256 tower
             emb_dim:int=4096 # size of the sigmoid feature vector
            ) -> nn.Sequential:
    "Koch et al. (2015) siamese tower: conv 10/7/4/4 with max-pooling, then a sigmoid fully connected layer. (B,n_in,S,S) -> (B,emb_dim)"
    c = [max(1, round(w*width)) for w in (64, 128, 128, 256)]
    convs = nn.Sequential(*_conv_block(n_in, c[0], 10), *_conv_block(c[0], c[1], 7), *_conv_block(c[1], c[2], 4),
                          *_conv_block(c[2], c[3], 4, pool=False), nn.Flatten())
    try:
        with torch.no_grad(): n_flat = convs(torch.zeros(1, n_in, size, size)).shape[1]
    except RuntimeError as e:
        raise ValueError(f'koch_net: size={size} is too small for its 10/7/4/4 convolutions (use >= 90)') from e
    net = nn.Sequential(*convs, nn.Linear(n_flat, emb_dim), nn.Sigmoid())
    net.nf = emb_dim
    return net
