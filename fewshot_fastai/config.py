"""What a few-shot learner is, in one typed object: `ModelConfig` is built by the learner factories, filled in by the
recipes, written by `save_model` as the JSON it has always been, and read back by `load_model`, which rebuilds the
learner through the same factories' parts."""
import dataclasses, warnings
from dataclasses import dataclass, field

__all__ = ['ModelConfig', 'model_config']

KINDS, POOLS = ('siamese', 'episodic'), ('avg', 'flatten')

@dataclass
class ModelConfig:
    "What rebuilds a learner's model and how it answers: its JSON form is the model folder's `config.json` (less the file's own fields)"
    kind:str # 'siamese' (pairs: encoder + pair head) or 'episodic' (ProtoNet: prototypes, classifier pre-training, ensembles)
    arch:str|None # an encoder name of the registry; None: a module passed by hand (JSON cannot rebuild it)
    n_in:int|None # input channels
    size:list|None # [rows, columns] of the images the model takes
    encoder_kwargs:dict=field(default_factory=dict) # passed to the encoder factory
    head:str|None=None # siamese: the pair head
    emb_dim:int|None=None # siamese: embedding size of the contrastive head
    margin:float|None=None # siamese: the contrastive loss's margin
    pool:str|None=None # episodic: 'avg' or 'flatten'
    model_kwargs:dict|None=None # episodic: more `ProtoNet` arguments (a classifier's `n_classes`, ...)
    tta:dict|None=None # the test-time views every entry point applies, as JSON (see `ff.inference.tta_from_spec`)
    recipe:str|None=None # the recipe that trained it
    members:int|None=None # an ensemble's member count (an ensemble is saved member by member)
    stats:dict=field(default_factory=dict, metadata=dict(saved=False)) # what the training run measured (epochs, seconds...): shown, not saved

    def __post_init__(self):
        if self.kind not in KINDS: raise ValueError(f'ModelConfig: kind={self.kind!r}; one of {KINDS}')
        if self.pool is not None and self.pool not in POOLS: raise ValueError(f'ModelConfig: pool={self.pool!r}; one of {POOLS}')
        if self.size is not None: self.size = [int(v) for v in self.size]
        if self.tta is not None and not isinstance(self.tta, dict): raise ValueError(f'ModelConfig: tta={self.tta!r}; a JSON spec (dict) or None')

    def to_json(self) -> dict:
        "The saved fields that are set, as plain JSON values (the keys `config.json` has always had)"
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.metadata.get('saved', True) and getattr(self, f.name) is not None}

    @classmethod
    def from_json(
        cls,
        d:dict, # a checked model config (`ff.deploy` checks the file field by field)
    ) -> 'ModelConfig':
        "The config of a checked `config.json` (unknown keys, such as the file's format and digest, are not the model's)"
        names = {f.name for f in dataclasses.fields(cls) if f.metadata.get('saved', True)}
        cfg = cls(**{k: v for k, v in d.items() if k in names})
        if cfg.recipe == 'faces' and cfg.arch != 'face_resnet':
            cfg.recipe = 'photos'   # a 'faces' folder of ImageNet taps is what the `photos` recipe makes
        return cfg

    def update(
        self,
        **kwargs, # field=value
    ) -> 'ModelConfig':
        "Set fields by name (a typo is a TypeError naming it, not a silent new key); checked again"
        bad = set(kwargs) - {f.name for f in dataclasses.fields(self)}
        if bad: raise TypeError(f'ModelConfig: no field {sorted(bad)[0]!r}')
        for k, v in kwargs.items(): setattr(self, k, v)
        self.__post_init__()
        return self

def model_config(
    learn, # any Learner
) -> ModelConfig|None:
    "The `ModelConfig` of a learner our factories or `load_model` made; None for any other learner"
    cfg = getattr(learn, 'model_config', None)
    return cfg if isinstance(cfg, ModelConfig) else None

def fewshot_config_alias(self):
    "`learn.fewshot_config`: the old dict spelling of `learn.model_config`, read-only, for one release"
    warnings.warn('learn.fewshot_config is now learn.model_config (a ff.ModelConfig; .to_json() gives the dict)',
                  DeprecationWarning, stacklevel=2)
    cfg = model_config(self)
    return None if cfg is None else {**cfg.to_json(), 'encoder_kwargs': cfg.encoder_kwargs}
