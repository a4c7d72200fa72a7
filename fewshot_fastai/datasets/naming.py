"""Omniglot's naming: the alphabet of a class label (`Alphabet/characterNN`), the drawer of a file (`NNNN_DD.png`)."""
import re
from pathlib import Path

__all__ = ['alphabet_of', 'drawer_of']

def alphabet_of(
    label:str, # a class label such as 'Latin/character01'
) -> str:
    "Omniglot alphabet of a class label `Alphabet/characterNN`"
    return label.split('/')[0]

def drawer_of(
    fn, # an Omniglot file name like '0108_05.png'
) -> int:
    "Omniglot drawer (1-20) of a file named like `0108_05.png`"
    m = re.fullmatch(r'\d+_(\d+)', Path(fn).stem)
    if not m: raise ValueError(f'{fn}: not an Omniglot file name (NNNN_DD.png); cannot tell its drawer')
    return int(m.group(1))
