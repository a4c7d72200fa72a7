"Argument checks for the public entry points: an impossible value raises an error naming the argument and the value"

__all__ = ['check_int', 'check_positive', 'moved_to', 'renamed', 'MAX_SIZE', 'MAX_PARAMS']

def check_int(where:str, name:str, value, low:int=1):
    "`value` must be an integer >= `low`"
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f'{where}: {name}={value!r}; it must be an integer >= {low}')
    return value

def check_positive(where:str, name:str, value):
    "`value` must be a number > 0"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f'{where}: {name}={value!r}; it must be a number > 0')
    return value

# The largest image side a recipe trains on and `load_model` loads (one bound, so that what `train` writes loads):
# a 512 px batch of Conv4 maps already takes several GB of a 24 GB machine.
MAX_SIZE = 512
# The most parameters a model file may ask for (counted on PyTorch's meta device before anything is allocated):
# 200M float32 parameters are 800 MB, several times the largest encoder we ship.
MAX_PARAMS = 200_000_000

def renamed(
    **old_new:str, # old keyword -> its name now, e.g. n_channels='n_in'
):
    """Keyword arguments renamed to the one vocabulary (CONTRIBUTING.md): the old spelling keeps working for one
    release, with a DeprecationWarning; both at once is a TypeError. The signature shown is the new one."""
    import functools, inspect, warnings
    def deco(f):
        @functools.wraps(f)
        def wrapper(*args, **kwargs):
            for old, new in old_new.items():
                if old in kwargs:
                    if new in kwargs: raise TypeError(f'{f.__qualname__}: {old!r} is the old name of {new!r}; give {new!r} only')
                    warnings.warn(f'{f.__qualname__}: {old!r} is now {new!r}', DeprecationWarning, stacklevel=2)
                    kwargs[new] = kwargs.pop(old)
            return f(*args, **kwargs)
        wrapper.__signature__ = inspect.signature(f)   # as fastcore's `delegates` sets it: methods and docs show the new names
        wrapper.__renamed__ = dict(old_new)   # what a reader of old files (model configs) translates
        return wrapper
    return deco

def moved_to(
    old:str, # the module the names left, e.g. 'fewshot_fastai.callbacks'
    new:str, # the module they live in now, e.g. 'fewshot_fastai.evaluate'
    names:set, # the names that moved
):
    "A module `__getattr__` that answers the moved `names` from `new` for one release, with a DeprecationWarning"
    def __getattr__(name):
        if name in names:
            import importlib, warnings
            warnings.warn(f"{old.replace('fewshot_fastai', 'ff')}.{name} is now {new.replace('fewshot_fastai', 'ff')}.{name}",
                          DeprecationWarning, stacklevel=2)
            return getattr(importlib.import_module(new), name)
        raise AttributeError(f'module {old!r} has no attribute {name!r}')
    return __getattr__

