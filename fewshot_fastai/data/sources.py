"""Data sources: find a dataset locally (``$FEWSHOT_DATA``, then the cache), else download it from its
official URL, verify its checksum and extract it safely into the cache.

fastai's ``untar_data``/fastdownload checks files against its own registry of URLs and extracts with
``shutil.unpack_archive``, which silently rewrites (rather than refuses) members that escape the target
folder and leaves a half-written folder behind after a crash. We need arbitrary URLs with md5/sha256
checksums, refusal of unsafe members and zip bombs, and atomic extraction, so this module does those steps
itself and reuses fastdownload only for the HTTP transfer with a fastprogress bar."""
import errno, hashlib, os, stat, zipfile
from pathlib import Path
from .._files import replacing_file, replacing_folder

__all__ = ['cache_dir', 'file_hash', 'check_hash', 'safe_extract', 'download',
           'fetch_zip', 'single_root']

def cache_dir() -> Path:
    "Where extracted datasets live: ``$FEWSHOT_CACHE``, default ``~/.cache/fewshot_fastai``"
    return Path(os.environ.get('FEWSHOT_CACHE', Path.home()/'.cache'/'fewshot_fastai')).expanduser()

def file_hash(
    fn, # a file
    algo='md5', # a hashlib algorithm name
    chunk=1<<20, # bytes read at a time
) -> str:
    "Hex digest of file `fn` with hashlib algorithm `algo`"
    h = hashlib.new(algo)
    with open(fn, 'rb') as f:
        while (b := f.read(chunk)): h.update(b)
    return h.hexdigest()

def check_hash(
    fn, # the file to hash
    expected:str|None, # hex md5 (32 digits) or sha256 (64); None skips the check
):
    "Raise if `fn` does not hash to `expected` (md5 if 32 hex digits, sha256 if 64); no-op when None"
    if expected is None: return
    algo = {32: 'md5', 64: 'sha256'}.get(len(expected))
    if algo is None: raise ValueError(f'checksum {expected!r} is neither an md5 (32 hex) nor a sha256 (64 hex)')
    got = file_hash(fn, algo)
    if got != expected.lower():
        raise ValueError(f'{fn}: {algo} is {got}, expected {expected}; the file is corrupt or not the one asked for')

def _unsafe_member(info:zipfile.ZipInfo, dest:Path) -> str|None:
    "Why extracting `info` under `dest` would be unsafe, or None"
    name = info.filename
    if name.startswith(('/', '\\')) or (len(name) > 1 and name[1] == ':'): return 'absolute path'
    if stat.S_ISLNK(info.external_attr >> 16): return 'symbolic link'
    target = (dest/name).resolve()
    if target != dest and dest not in target.parents: return 'escapes the target folder'
    return None

MAX_EXTRACT_BYTES = 32 << 30   # what an archive may expand to (32 GiB): Omniglot's full sets are ~0.1 GB
MAX_EXTRACT_RATIO = 200   # expanded / compressed size: images compress ~1-5x; a 1 MB zip of 1 GiB is a zip bomb

def safe_extract(
    zip_path, # the zip archive
    dest, # a folder that must not exist yet (unless `replace`)
    replace:bool=False, # replace an existing `dest` as a whole, once the new extraction is complete
    max_bytes:int=MAX_EXTRACT_BYTES, # refuse archives that would expand to more bytes
    max_ratio:float=MAX_EXTRACT_RATIO, # refuse archives whose expanded size exceeds this many times their compressed size
) -> Path:
    """Extract `zip_path` into the folder `dest`, atomically: members are written to a temporary sibling folder
    which takes `dest`'s place only once everything is out (the previous `dest`, with `replace`, stays until then).
    Refuses (raises, writing nothing at `dest`) any member with an absolute path, a `..` escape or a symlink
    (zip-slip), and archives that would expand beyond `max_bytes` or `max_ratio` (zip bombs; zipfile never
    writes more than a member's declared size, so the declared sizes bound what is written)."""
    zip_path, dest = Path(zip_path), Path(dest)
    if dest.exists() and not replace: raise FileExistsError(f'{dest} already exists')
    try:
        with replacing_folder(dest, keep=lambda name: True) as tmp, zipfile.ZipFile(zip_path) as zf:
            infos = zf.infolist()
            for info in infos:
                if (why := _unsafe_member(info, tmp.resolve())):
                    raise ValueError(f'{zip_path}: refusing to extract member {info.filename!r} ({why})')
            total, packed = sum(i.file_size for i in infos), sum(i.compress_size for i in infos)
            if total > max_bytes or total > max_ratio*max(packed, 1):
                raise ValueError(f'{zip_path}: refusing to extract: it would expand to {total:,} bytes from {packed:,} '
                                 f'(limits: {max_bytes:,} bytes, {max_ratio:g}x its compressed size)')
            zf.extractall(tmp)
            if dest.exists() and not replace: raise FileExistsError(f'{dest} already exists')
    except zipfile.BadZipFile as e: raise ValueError(f'{zip_path}: not a zip archive ({e})') from None
    except OSError as e:
        # another process finished the same extraction first (its rename was atomic): theirs stands
        if e.errno in (errno.EEXIST, errno.ENOTEMPTY) and dest.is_dir() and not replace:
            raise FileExistsError(f'{dest} already exists') from None
        if e.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
            raise ValueError(f'{dest.parent}: cannot write the extraction there ({e.strerror}); set FEWSHOT_CACHE to a '
                             'writable folder') from None
        raise
    return dest

def download(
    url:str, # http(s) or file URL
    dest, # file to write
    checksum:str|None=None, # md5 or sha256 to verify; None: not checked
    show_progress=True, # fastprogress bar while downloading
) -> Path:
    "Download `url` to file `dest` (via a temporary sibling of its own, so concurrent downloads do not mix), verify `checksum`, return `dest`"
    from fastdownload import download_url
    dest = Path(dest)
    try:
        with replacing_file(dest) as tmp:
            download_url(url, tmp, show_progress=show_progress)
            check_hash(tmp, checksum)
    except OSError as e: raise OSError(f'could not download {url}: {e}') from e
    return dest

def single_root(folder:Path, name:str) -> Path:
    "The dataset folder inside an extraction: `folder/name` if present, else `folder` itself"
    return folder/name if (folder/name).is_dir() else folder

def fetch_zip(
    fname:str, # archive name, e.g. 'images_background_small1.zip'
    url:str|None=None, # where to download it when no local copy is found
    checksum:str|None=None, # md5 (32 hex digits) or sha256 (64) of the zip; None: not checked
    data_dir=None, # folder searched first for the zip or its extracted folder; default ``$FEWSHOT_DATA``
    force=False, # download and extract again even if a copy is found
) -> Path:
    """Local folder holding the contents of archive `fname` (e.g. 'images_background_small1.zip').
    Looks in `data_dir` (default ``$FEWSHOT_DATA``) for the extracted folder or the zip, then in the cache;
    otherwise downloads `url`. Zips (local or downloaded) are checked against `checksum` before extraction."""
    stem = fname[:-4] if fname.endswith('.zip') else fname
    data_dir = data_dir if data_dir is not None else os.environ.get('FEWSHOT_DATA')
    if data_dir:
        data_dir = Path(data_dir).expanduser()
        if (data_dir/stem).is_dir(): return single_root(data_dir/stem, stem)
    cached = cache_dir()/stem
    if cached.is_dir() and not force: return single_root(cached, stem)
    zip_path = data_dir/fname if data_dir and (data_dir/fname).is_file() else None
    if zip_path is None:
        if url is None:
            where = f'{data_dir} or ' if data_dir else ''
            raise FileNotFoundError(f'{fname} not found in {where}{cache_dir()} and no URL to download it from')
        zip_path = download(url, cache_dir()/'downloads'/fname, checksum)
    else: check_hash(zip_path, checksum)
    # the cached copy (with `force`) is replaced only by a complete extraction of a verified zip
    try: safe_extract(zip_path, cached, replace=force)
    except FileExistsError: pass  # another process extracted it meanwhile; its rename was atomic
    return single_root(cached, stem)
