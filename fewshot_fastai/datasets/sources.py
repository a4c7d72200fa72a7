"""Omniglot (Lake et al.) and ORL faces: their official archives and checksums, through `data.sources.fetch_zip`."""
from pathlib import Path
from ..data.sources import fetch_zip, single_root

__all__ = ['OMNIGLOT_URL', 'OMNIGLOT', 'omniglot', 'orl_faces']

OMNIGLOT_URL = 'https://raw.githubusercontent.com/brendenlake/omniglot/master/python/'
# name -> (zip file name, md5). The small sets' md5s are those of the shared copies; the full sets' are
# the ones torchvision's Omniglot dataset checks.
OMNIGLOT = {
    'background_small1': ('images_background_small1.zip', 'e704a628b5459e08445c13499850abc4'),
    'background_small2': ('images_background_small2.zip', 'b75a71a51d3b13f821f212756fe481fd'),
    'background':        ('images_background.zip',        '68d2efa1b9178cc56df9314c21c6e718'),
    'evaluation':        ('images_evaluation.zip',        '6b91aef0f799c5bb55b94e3f2daec811'),
}

def omniglot(
    name:str='background_small1', # one of `OMNIGLOT`: background_small1/2, background, evaluation
    data_dir=None, # folder with the zip or extracted folder; default ``$FEWSHOT_DATA``
    url:str|None=None, # override the download URL (default: Lake's github, `python/` folder)
    force=False, # download and extract again even if a copy is found
) -> Path:
    "Folder of Omniglot `name`: ``Alphabet/characterNN/*.png`` (105x105, black ink on white)"
    if name not in OMNIGLOT: raise ValueError(f'unknown Omniglot set {name!r}; choose from {list(OMNIGLOT)}')
    fname, md5 = OMNIGLOT[name]
    return fetch_zip(fname, url or OMNIGLOT_URL + fname, md5, data_dir=data_dir, force=force)

def orl_faces(
    path=None, # a local `orl_faces.zip` or folder with s1..s40; default ``$FEWSHOT_DATA``
    url:str|None=None, # a mirror of the zip (default: the official archive)
    checksum:str|None=None, # its md5/sha256 (default: the official zip's)
    force=False, # download and extract again even if a copy is found
) -> Path:
    """Folder of the ORL (AT&T) faces, ``s1..s40/1..10.pgm`` (92x112 grey; credit: Olivetti Research
    Laboratory, Cambridge). The database has no stable official URL: give a local copy or a URL + checksum."""
    if url is not None and checksum is None:
        raise ValueError('orl_faces: a download `url` needs a `checksum` (md5 or sha256) to verify it')
    if path is not None:
        path = Path(path).expanduser()
        if not path.exists(): raise FileNotFoundError(f'orl_faces: {path} does not exist')
        if path.is_dir(): return single_root(path, 'orl_faces')
        return fetch_zip(path.name, None, checksum, data_dir=path.parent, force=force)
    try: return fetch_zip('orl_faces.zip', url, checksum, force=force)
    except FileNotFoundError as e:
        raise FileNotFoundError(f'{e}. ORL faces have no official download: set FEWSHOT_DATA to the folder '
                                'holding orl_faces.zip, or pass path=... or url=... with checksum=...') from None
