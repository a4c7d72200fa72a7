"SiameseModel: one shared encoder, a pair head; and its parameter groups for discriminative learning rates"
import torch
from torch import nn
from fastai.torch_core import params

__all__ = ['SiameseModel', 'siamese_splitter']

class SiameseModel(nn.Module):
    "Shared-weight siamese network: `head(encoder(a), encoder(b))`. a, b: (B,C,H,W)"
    def __init__(
        self,
        encoder:nn.Module, # image -> features, shared by both images
        head:nn.Module, # a pair head with `embed`, `compare` and `similarity` (`ff.models.ConcatHead`, `L1Head`, ...)
    ):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(
        self,
        a, # first images, (B,C,H,W)
        b, # second images, (B,C,H,W)
    ):
        "The head's pair outputs: logits, or distances for the contrastive head"
        # one encoder pass over both halves: half the kernel launches, same BatchNorm statistics for a and b
        # plain tensors: fastai's TensorImage dispatches every op through Python
        f = self.encoder(torch.cat([a.as_subclass(torch.Tensor), b.as_subclass(torch.Tensor)]))
        return self.head(*f.split(len(a)))

    def encode(
        self,
        x, # images, (B,C,H,W)
    ):
        "Per-image embeddings the head compares: (B,C,H,W) -> (B,D)"
        return self.head.embed(self.encoder(x))

    def compare(
        self,
        ea, # embeddings of the first images, (P,D)
        eb, # embeddings of the second images, (P,D)
    ):
        "Pair outputs (as `forward`) from embeddings of `encode`"
        return self.head.compare(ea, eb)

    def similarity(
        self,
        ea, # embeddings of the first images, (P,D)
        eb, # embeddings of the second images, (P,D)
    ):
        "One score per pair of embeddings, higher for 'same': (P,D),(P,D) -> (P,)"
        return self.head.similarity(ea, eb)

def siamese_splitter(
    model:SiameseModel, # a `SiameseModel` (or a DDP wrapper around one)
) -> list:
    "Parameter groups `[encoder, head]`, so `freeze`, `fine_tune` and `slice(lr)` act on the encoder"
    return [params(model.encoder), params(model.head)]
