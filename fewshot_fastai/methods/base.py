"""The support/query contract every few-shot classifier follows (as easyfsl's `FewShotClassifier`): built with the
model's score of embeddings, `process_support_set(support, labels, n_classes)` once, then `forward(queries)` ->
query x class scores, higher is better. Support and queries are embeddings (`ff.embed`): every image is encoded once,
whatever the classifier. A registry names the classifiers, so that `classify`, `SupportSet`, `episode_accuracy`,
`NWayEval`, the saved support set and the CLI's `--method` take any registered one."""
import torch

__all__ = ['FewShotClassifier', 'register_method', 'list_methods', 'create_method', 'check_method']

class FewShotClassifier:
    "Subclass and override `process_support_set` and `forward`; register with `@register_method(name)`"
    def __init__(
        self,
        similarity, # the model's scores of embeddings: (Q,D), (S,D) -> (Q,S), higher is closer
    ):
        self.similarity = similarity

    def process_support_set(
        self,
        support:torch.Tensor, # support embeddings, (S,D)
        labels, # class index (0..n_classes-1) of each support embedding
        n_classes:int|None=None, # number of classes (default: the largest label + 1)
    ) -> 'FewShotClassifier':
        "Keep what `forward` needs from the support set -> self"
        self.support = support
        self.labels = torch.as_tensor(labels, dtype=torch.long, device=support.device)
        self.n_classes = int(self.labels.max()) + 1 if n_classes is None else n_classes
        return self

    def forward(
        self,
        queries:torch.Tensor, # query embeddings, (Q,D)
    ) -> torch.Tensor:
        "Query x class scores, (Q, n_classes)"
        raise NotImplementedError(f'{type(self).__name__}.forward')

    def __call__(self, queries:torch.Tensor) -> torch.Tensor: return self.forward(queries)   # as an nn.Module is called

_METHODS: dict[str, type] = {}

def register_method(
    name:str, # what `method=` / `--method` call it
):
    "Decorator: register a `FewShotClassifier` subclass under `name`"
    def deco(cls):
        if not (isinstance(cls, type) and issubclass(cls, FewShotClassifier)):
            raise TypeError(f'register_method({name!r}): {cls!r} is not a FewShotClassifier subclass')
        if name in _METHODS and _METHODS[name] is not cls: raise ValueError(f'method {name!r} is registered twice')
        _METHODS[name] = cls
        return cls
    return deco

def list_methods() -> list[str]:
    "The registered classifier names"
    return sorted(_METHODS)

def check_method(
    name, # a classifier name
    where:str='support', # what to name in the error
) -> str:
    "`name` if it is registered, else a one-line ValueError naming the registered ones"
    if name not in _METHODS:
        raise ValueError(f"{where}: method {name!r}: use {' or '.join(map(repr, list_methods()))}")
    return name

def create_method(
    name:str, # a registered classifier
    similarity, # the model's scores of embeddings: (Q,D), (S,D) -> (Q,S)
) -> FewShotClassifier:
    "A new classifier `name` on the model's `similarity`"
    return _METHODS[check_method(name)](similarity)
