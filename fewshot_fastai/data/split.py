"""Splits by class: the classes held out for validation (few-shot learning validates on classes never trained on)."""
import random

__all__ = ['class_split', 'held_out_classes']

def class_split(
    labels:list[str], # the class labels
    valid_pct:float=0.2, # share of the classes (or groups) to hold out
    seed:int|None=None, # seed of the random choice
    group=None, # label -> group function: whole groups are held out (e.g. `alphabet_of`)
) -> set[str]:
    """The labels held out for validation: a `valid_pct` share of the classes, or of the groups of classes
    given by `group(label)` (e.g. `alphabet_of` for unseen Omniglot alphabets), drawn with `seed`."""
    if not 0 < valid_pct < 1: raise ValueError(f'valid_pct must be in (0, 1), got {valid_pct}')
    keys = sorted({group(l) if group else l for l in labels})
    n_valid = max(1, round(valid_pct*len(keys)))
    if n_valid >= len(keys): raise ValueError(f'valid_pct={valid_pct} leaves no training class out of {len(keys)}')
    held = set(random.Random(seed).sample(keys, n_valid))
    return {l for l in labels if (group(l) if group else l) in held}

def held_out_classes(
    names:list[str], # the class labels
    valid_pct:float=0.2, # share of the classes (or groups) to hold out when `valid_classes` is None
    seed:int|None=None, # seed of the random choice
    valid_classes=None, # the held-out labels: a list, or a predicate on the label
    group=None, # label -> group function: whole groups are held out (e.g. `alphabet_of`)
) -> set[str]:
    "Validation labels: explicit `valid_classes` (list, or predicate on the label), else `class_split`; checked"
    if valid_classes is None: held = class_split(names, valid_pct, seed, group)
    elif callable(valid_classes): held = {n for n in names if valid_classes(n)}
    else:
        held = set(valid_classes)
        if (unknown := held - set(names)): raise ValueError(f'valid_classes not found: {sorted(unknown)[:5]}')
    if not held or held == set(names): raise ValueError(f'the split leaves {len(held)} of {len(names)} classes for validation')
    return held
