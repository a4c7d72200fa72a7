"""All-or-nothing writes. A file or a whole folder is written beside its target under a temporary name, then renamed
into place, so a crash or an exception leaves the previous version intact and a reader sees the old or the new one.
A folder is swapped in with Linux's `renameat2(RENAME_EXCHANGE)` (one atomic step); elsewhere with two renames.
Written here because neither the standard library nor fastai/fastcore has an atomic folder replace."""
import ctypes, os, shutil, uuid
from contextlib import contextmanager
from pathlib import Path

__all__ = ['write_file', 'replacing_file', 'replacing_folder']

def _tmp_sibling(path:Path, kind:str='tmp') -> Path:
    return path.with_name(f'.{path.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}')

def _alive(pid:int) -> bool:
    try: os.kill(pid, 0)
    except ProcessLookupError: return False
    except PermissionError: return True
    return True

def _clear_stale(path:Path):
    "Remove temporary siblings of `path` left by writers that died (their process is gone)"
    for p in path.parent.glob(f'.{path.name}.*-*-*'):
        try: pid = int(p.name.rsplit('-', 2)[-2])
        except ValueError: continue
        if pid != os.getpid() and not _alive(pid):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)

def _fsync_file(p:Path):
    with open(p, 'rb') as f: os.fsync(f.fileno())

@contextmanager
def replacing_file(path):
    """Yields a temporary sibling path to write with any writer (torch.save, savefig...); renamed onto `path` on success.
    A symbolic link is written through: its target is replaced, the link stays."""
    path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    _clear_stale(path)
    tmp = _tmp_sibling(path)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

def write_file(path, data) -> Path:
    "Write `data` (str or bytes) to `path` all-or-nothing"
    with replacing_file(path) as tmp: tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return Path(path)

_RENAME_EXCHANGE = 2
def _exchange(a:Path, b:Path) -> bool:
    "Swap two paths in one atomic step (Linux renameat2); False where the OS cannot"
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError): return False
    AT_FDCWD = -100
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0

@contextmanager
def replacing_folder(
    path, # the folder to write (replaced as a whole when it exists)
    keep=lambda name: False, # names of files of the old folder that may be dropped by the replacement: others make it refuse
):
    """Yields a new temporary sibling folder; when the block ends without an error it replaces `path` as a whole, else it
    is removed and `path` is untouched. An existing folder holding a file `keep` does not accept is refused (ValueError),
    so that a replacement never deletes files it did not write. A symbolic link is written through: the folder it
    leads to is replaced, the link stays."""
    path = Path(os.path.realpath(path))
    if path.exists() and not path.is_dir(): raise ValueError(f'{path}: a file, not a folder')
    if path.is_dir():
        other = sorted(p.name for p in path.iterdir() if not keep(p.name))
        if other: raise ValueError(f'{path}: holds {other[0]!r}' + (f' and {len(other) - 1} more' if len(other) > 1 else '')
                                   + ', which is not part of a saved model; save to a new or empty folder')
    path.parent.mkdir(parents=True, exist_ok=True)
    _clear_stale(path)
    tmp = _tmp_sibling(path)
    tmp.mkdir()
    try:
        yield tmp
        for f in tmp.rglob('*'):
            if f.is_file(): _fsync_file(f)
        if not path.exists(): os.rename(tmp, path)
        elif _exchange(tmp, path): shutil.rmtree(tmp)   # tmp now holds the old version
        else:
            old = _tmp_sibling(path, 'old')
            os.rename(path, old); os.rename(tmp, path); shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
