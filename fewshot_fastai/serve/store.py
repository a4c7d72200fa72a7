"""The gallery's file: SQLite in WAL mode (the standard library's `sqlite3`). One row per enrolled image (label, the
image's sha256, its embedding as float32 bytes, a small thumbnail, the time); a `meta` table holds the format, the
digest of the model's weights that made the embeddings, their size, and a version counter that every change bumps in
the same transaction, so that every process sharing the file knows when what it holds in memory is stale."""
import hashlib, sqlite3, time
from contextlib import contextmanager
from pathlib import Path
import numpy as np
import torch

__all__ = ['GalleryError', 'GalleryFull', 'GalleryReadOnly', 'model_digest', 'Store']

FORMAT = '1'

class GalleryError(ValueError):
    "A gallery that cannot be used with this model (another model's, not a gallery, a newer format)"

class GalleryFull(OSError):
    "The disk (or the gallery's size limit) is full: nothing of the change was written"

class GalleryReadOnly(OSError):
    "The gallery was opened read-only, or its file cannot be written"

def model_digest(
    model:torch.nn.Module, # the model whose embeddings the gallery holds
) -> str:
    "sha256 of the model's state (every tensor's name, type, shape and bytes, sorted by name): equal for equal weights"
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        t = v.detach().cpu().contiguous()
        h.update(f'{k}|{t.dtype}|{tuple(t.shape)}|'.encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    label TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    embedding BLOB NOT NULL,
    thumbnail BLOB,
    added REAL NOT NULL,
    UNIQUE(label, sha256));
CREATE INDEX IF NOT EXISTS images_label ON images(label);
"""

def _write_error(err:sqlite3.Error, path:Path) -> Exception:
    "SQLite's write failures as the errors the server answers 507 / 503 to; others unchanged"
    msg = str(err)
    if isinstance(err, sqlite3.OperationalError) and ('full' in msg or 'disk I/O' in msg):
        return GalleryFull(f'{path}: the disk or the gallery size limit is full ({msg}); nothing of this change was written')
    if 'readonly' in msg or 'read-only' in msg:
        return GalleryReadOnly(f'{path}: the gallery is read-only ({msg}); nothing was written')
    return err

class Store:
    "The gallery file: rows in, rows out, each change one transaction; thread-safe (one connection, one lock)"
    def __init__(
        self,
        path, # the gallery file (created when absent, unless `read_only`)
        digest:str, # `model_digest` of the model
        dim:int, # embedding size
        read_only:bool=False, # open read-only: changes are refused
        max_bytes:int|None=None, # refuse changes that would grow the file past this size
        timeout:float=10.0, # seconds to wait for another process's write
    ):
        import threading
        self.path, self.read_only = Path(path), read_only
        if read_only and not self.path.is_file(): raise FileNotFoundError(f'{self.path}: no such gallery file (opened read-only)')
        if self.path.is_dir(): raise GalleryError(f'{self.path}: is a folder, not a gallery file')
        if not self.path.parent.is_dir(): raise FileNotFoundError(f'{self.path.parent}: no such folder for the gallery')
        uri = f'file:{self.path.resolve()}?mode={"ro" if read_only else "rwc"}'
        try:
            self.db = sqlite3.connect(uri, uri=True, timeout=timeout, check_same_thread=False, isolation_level=None)
            self.db.execute('PRAGMA busy_timeout = %d' % int(timeout*1000))
            if not read_only:
                self.db.execute('PRAGMA journal_mode = WAL')
                self.db.execute('PRAGMA synchronous = FULL')   # an answered enrolment survives a crash of the machine too
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as e:
            raise GalleryError(f'{self.path}: not a gallery (SQLite: {e})') from None
        self.lock = threading.RLock()
        if not tables:
            if read_only: raise GalleryError(f'{self.path}: an empty file, not a gallery')
            try:
                with self._tx() as c:
                    for stmt in _SCHEMA.split(';'):
                        if stmt.strip(): c.execute(stmt)
                    c.executemany('INSERT INTO meta VALUES (?, ?)', [('format', FORMAT), ('model_sha256', digest),
                                                                      ('dim', str(dim)), ('version', '0'), ('removals', '0')])
            except sqlite3.Error as e: raise _write_error(e, self.path) from None
        elif not {'meta', 'images'} <= tables: raise GalleryError(f'{self.path}: an SQLite file, but not a gallery (tables {sorted(tables)})')
        meta = self.meta()
        if meta.get('format') != FORMAT: raise GalleryError(f"{self.path}: gallery format {meta.get('format')!r}; this version reads {FORMAT!r}")
        if meta.get('model_sha256') != digest:
            raise GalleryError(f'{self.path}: built by another model (weights sha256 {meta.get("model_sha256", "?")[:12]}..., '
                               f'this model {digest[:12]}...): use a new gallery file for this model')
        if meta.get('dim') != str(dim): raise GalleryError(f"{self.path}: holds {meta.get('dim')}-d embeddings; this model makes {dim}-d")
        self.dim = dim
        if max_bytes is not None and not read_only:
            page = self.db.execute('PRAGMA page_size').fetchone()[0]
            self.db.execute(f'PRAGMA max_page_count = {max(1, int(max_bytes)//page)}')

    def meta(self) -> dict:
        return dict(self.db.execute('SELECT key, value FROM meta'))

    def version(self) -> tuple[int, int]:
        "(version, removals): both only grow; a new version with the same removals means rows were only added"
        with self.lock:
            r = dict(self.db.execute("SELECT key, value FROM meta WHERE key IN ('version', 'removals')"))
        return int(r['version']), int(r['removals'])

    @contextmanager
    def _tx(self):
        "One write transaction (BEGIN IMMEDIATE: other processes wait for it), committed whole or rolled back"
        with self.lock:
            self.db.execute('BEGIN IMMEDIATE')
            try:
                yield self.db
                self.db.execute('COMMIT')
            except BaseException:
                if self.db.in_transaction: self.db.execute('ROLLBACK')   # some errors (a full disk) roll back by themselves
                raise

    def _check_writable(self):
        if self.read_only: raise GalleryReadOnly(f'{self.path}: the gallery is open read-only; nothing was written')

    def add(
        self,
        label:str, # the class
        rows:list, # (sha256, embedding (D,) float32 array, thumbnail bytes or None) per image
    ) -> tuple[int, int]:
        "Insert the rows not there yet (same label and sha256) in one transaction -> (added, the label's image count)"
        added, counts = self.add_many([(label, *r) for r in rows])
        return added, counts[label]

    def add_many(
        self,
        rows, # (label, sha256, embedding (D,) float32 array, thumbnail bytes or None) per image, any labels
    ) -> tuple[int, dict]:
        "Insert the rows not there yet (same label and sha256) in one transaction -> (added, {label: image count after})"
        self._check_writable()
        now = time.time()
        try:
            with self._tx() as c:
                added, labels = 0, set()
                for label, sha, e, thumb in rows:
                    labels.add(label)
                    cur = c.execute('INSERT OR IGNORE INTO images(label, sha256, embedding, thumbnail, added) VALUES (?, ?, ?, ?, ?)',
                                    (label, sha, np.asarray(e, dtype='<f4').tobytes(), thumb, now))
                    added += cur.rowcount
                if added: c.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'version'")
                counts = {l: c.execute('SELECT COUNT(*) FROM images WHERE label = ?', (l,)).fetchone()[0] for l in labels}
        except sqlite3.Error as e: raise _write_error(e, self.path) from None
        return added, counts

    def remove(
        self,
        label:str, # the class
    ) -> int:
        "Delete every image of `label` in one transaction -> how many (0: no such label)"
        self._check_writable()
        try:
            with self._tx() as c:
                n = c.execute('DELETE FROM images WHERE label = ?', (label,)).rowcount
                if n: c.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key IN ('version', 'removals')")
        except sqlite3.Error as e: raise _write_error(e, self.path) from None
        return n

    def classes(self) -> list[tuple[str, int]]:
        "(label, image count) of every class, by label"
        with self.lock: return list(self.db.execute('SELECT label, COUNT(*) FROM images GROUP BY label ORDER BY label'))

    def rows(
        self,
        after:int=0, # only rows whose id is above this
    ) -> tuple[np.ndarray, list, np.ndarray]:
        "(ids, labels, embeddings (N,D) float32) of the rows after `after`, in id order, read in one snapshot"
        with self.lock:
            got = self.db.execute('SELECT id, label, embedding FROM images WHERE id > ? ORDER BY id', (after,)).fetchall()
        ids = np.array([r[0] for r in got], dtype=np.int64)
        emb = np.frombuffer(b''.join(r[2] for r in got), dtype='<f4').reshape(len(got), self.dim).copy() if got else np.zeros((0, self.dim), np.float32)
        return ids, [r[1] for r in got], emb

    def thumbnails(
        self,
        label:str, # the class
        limit:int=8, # at most this many
    ) -> list[tuple[int, bytes]]:
        "(id, PNG bytes) of the first thumbnails of `label`"
        with self.lock:
            return list(self.db.execute('SELECT id, thumbnail FROM images WHERE label = ? AND thumbnail IS NOT NULL ORDER BY id LIMIT ?', (label, limit)))

    def thumbnail(self, row:int) -> bytes|None:
        with self.lock: r = self.db.execute('SELECT thumbnail FROM images WHERE id = ?', (int(row),)).fetchone()
        return r[0] if r else None

    def integrity(self) -> str:
        "SQLite's `PRAGMA integrity_check`: 'ok' for a sound file"
        with self.lock: return self.db.execute('PRAGMA integrity_check').fetchone()[0]

    def close(self):
        with self.lock: self.db.close()
