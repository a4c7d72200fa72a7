"Finding, downloading (from a local HTTP server), checking and safely extracting datasets"
import functools, http.server, threading, zipfile
import pytest
import fewshot_fastai as ff
from fewshot_fastai.data import sources

MD5_SMALL1 = 'e704a628b5459e08445c13499850abc4'

@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv('FEWSHOT_CACHE', str(tmp_path/'cache'))
    return tmp_path/'cache'

@pytest.fixture(scope='module')
def server(data_dir):
    "An http.server on 127.0.0.1 serving the shared data folder"
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(data_dir))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{srv.server_address[1]}/'
    srv.shutdown()

def test_omniglot_from_local_zip(data_dir, cache):
    p = ff.omniglot('background_small1', data_dir=data_dir)
    assert p.is_relative_to(cache)
    alphabets = sorted(d.name for d in p.iterdir())
    assert alphabets == ['Balinese', 'Early_Aramaic', 'Greek', 'Korean', 'Latin']
    assert len(list(p.glob('*/*/*.png'))) == 136*20
    # second call: served from the cache, no re-extraction
    mtime = p.stat().st_mtime_ns
    assert ff.omniglot('background_small1', data_dir=data_dir) == p and p.stat().st_mtime_ns == mtime

def test_extracted_folder_in_data_dir_is_used_as_is(tmp_path, cache):
    (tmp_path/'orl_faces'/'s1').mkdir(parents=True)
    assert ff.data.fetch_zip('orl_faces.zip', data_dir=tmp_path) == tmp_path/'orl_faces'

def test_download_end_to_end(server, cache, tmp_path):
    p = ff.omniglot('background_small2', data_dir=tmp_path, url=server + 'images_background_small2.zip')
    assert p.is_relative_to(cache) and (p/'Tagalog').is_dir()
    assert len(list(p.glob('*/*/*.png'))) == 156*20
    assert (cache/'downloads'/'images_background_small2.zip').is_file()

def test_download_wrong_checksum_leaves_nothing(server, cache, tmp_path):
    with pytest.raises(ValueError, match='md5 is .* expected 0+'):
        ff.data.fetch_zip('images_background_small1.zip', server + 'images_background_small1.zip', '0'*32, data_dir=tmp_path)
    assert not (cache/'images_background_small1').exists()
    assert not any((cache/'downloads').iterdir())

def test_download_missing_url(server, cache, tmp_path):
    with pytest.raises(OSError, match='could not download'):
        ff.data.fetch_zip('nope.zip', server + 'nope.zip', None, data_dir=tmp_path)

def test_local_zip_checked(tmp_path, cache, data_dir):
    bad = tmp_path/'images_background_small1.zip'
    bad.write_bytes((data_dir/'images_background_small1.zip').read_bytes()[:-10])
    with pytest.raises(ValueError, match=str(bad)):
        ff.omniglot('background_small1', data_dir=tmp_path)

def test_unknown_set_and_missing_everything(tmp_path, cache):
    with pytest.raises(ValueError, match='unknown Omniglot set'): ff.omniglot('background_small3')
    with pytest.raises(FileNotFoundError, match='no URL'): ff.data.fetch_zip('x.zip', data_dir=tmp_path)

@pytest.mark.parametrize('name', ['../evil.txt', '/abs/evil.txt', 'ok/../../evil.txt'])
def test_zip_slip_refused(tmp_path, name):
    z = tmp_path/'evil.zip'
    with zipfile.ZipFile(z, 'w') as zf:
        zf.writestr('ok/good.txt', 'fine'); zf.writestr(name, 'pwned')
    with pytest.raises(ValueError, match='refusing to extract'):
        ff.data.safe_extract(z, tmp_path/'out'/'data')
    assert not (tmp_path/'out'/'data').exists() and not (tmp_path/'evil.txt').exists()
    assert list((tmp_path/'out').iterdir()) == []  # no half-extracted leftovers

def test_symlink_member_refused(tmp_path):
    z = tmp_path/'link.zip'
    with zipfile.ZipFile(z, 'w') as zf:
        info = zipfile.ZipInfo('link'); info.external_attr = (0o120777 << 16)
        zf.writestr(info, '/etc/passwd')
    with pytest.raises(ValueError, match='symbolic link'): ff.data.safe_extract(z, tmp_path/'out')

def test_extraction_is_atomic(tmp_path, data_dir, monkeypatch):
    "A crash mid-extraction leaves neither the target nor a partial folder"
    real = zipfile.ZipFile.extractall
    def crash(self, path=None, *a, **k):
        real(self, path, members=self.namelist()[:50])
        raise KeyboardInterrupt
    monkeypatch.setattr(zipfile.ZipFile, 'extractall', crash)
    with pytest.raises(KeyboardInterrupt):
        ff.data.safe_extract(data_dir/'images_background_small1.zip', tmp_path/'ds')
    assert list(tmp_path.iterdir()) == []

def test_check_hash_sha256(data_dir):
    f = data_dir/'OMNIGLOT_LICENSE'
    ff.data.check_hash(f, sources.file_hash(f, 'sha256'))
    with pytest.raises(ValueError, match='neither an md5'): ff.data.check_hash(f, 'abc')
    assert sources.file_hash(data_dir/'images_background_small1.zip') == MD5_SMALL1

def test_orl_faces(data_dir, cache, tmp_path):
    p = ff.orl_faces()
    assert sorted(d.name for d in p.iterdir() if d.is_dir()) == sorted(f's{i}' for i in range(1, 41))
    assert ff.orl_faces(path=p) == p  # an extracted folder is used in place
    with pytest.raises(ValueError, match='checksum'): ff.orl_faces(url='http://127.0.0.1:1/orl.zip')
    with pytest.raises(FileNotFoundError, match='does not exist'): ff.orl_faces(path=tmp_path/'none.zip')

def test_orl_faces_without_data(cache, monkeypatch):
    monkeypatch.delenv('FEWSHOT_DATA')
    with pytest.raises(FileNotFoundError, match='no official download'): ff.orl_faces()

def test_orl_faces_download_with_checksum(server, cache, monkeypatch, data_dir):
    monkeypatch.delenv('FEWSHOT_DATA')
    md5 = sources.file_hash(data_dir/'orl_faces.zip')
    p = ff.orl_faces(url=server + 'orl_faces.zip', checksum=md5)
    assert p.is_relative_to(cache) and len(list(p.glob('s*/*.pgm'))) == 400
    with pytest.raises(ValueError, match='md5 is'):
        ff.orl_faces(url=server + 'orl_faces.zip', checksum='f'*32, force=True)

def test_force_with_a_corrupt_zip_keeps_the_cached_copy(data_dir, cache, tmp_path):
    p = ff.omniglot('background_small1', data_dir=data_dir)
    n = len(list(p.glob('*/*/*.png')))
    bad = tmp_path/'bad'; bad.mkdir()
    (bad/'images_background_small1.zip').write_bytes((data_dir/'images_background_small1.zip').read_bytes()[:100000])
    with pytest.raises(ValueError, match='md5'): ff.omniglot('background_small1', data_dir=bad, force=True)
    assert len(list(p.glob('*/*/*.png'))) == n == 2720
    # a good zip with force: replaced as a whole, nothing left beside it
    assert ff.omniglot('background_small1', data_dir=data_dir, force=True) == p and len(list(p.glob('*/*/*.png'))) == n
    assert sorted(x.name for x in cache.iterdir()) == ['images_background_small1']

def test_processes_fetching_the_same_dataset_at_once_all_succeed(data_dir, cache):
    import os, subprocess, sys
    code = ('import sys, fewshot_fastai as ff; p = ff.omniglot("background_small1", data_dir=sys.argv[1]); '
            'print(len(list(p.glob("*/*/*.png"))))')
    env = {**os.environ, 'FEWSHOT_CACHE': str(cache), 'PYTHONWARNINGS': 'ignore'}
    procs = [subprocess.Popen([sys.executable, '-c', code, str(data_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]   # two racing processes: one extracts, one waits
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-500:] for _, e in outs]
    assert [o.strip() for o, _ in outs] == ['2720']*2
    assert sorted(x.name for x in cache.iterdir()) == ['images_background_small1']

def test_zip_bomb_refused(tmp_path):
    z = tmp_path/'bomb.zip'
    with zipfile.ZipFile(z, 'w', zipfile.ZIP_DEFLATED) as zf: zf.writestr('zeros.bin', bytes(64 << 20))   # 64 MiB -> ~64 KB
    with pytest.raises(ValueError, match='refusing to extract: it would expand to 67,108,864 bytes'):
        ff.data.safe_extract(z, tmp_path/'out')
    assert not (tmp_path/'out').exists() and sorted(p.name for p in tmp_path.iterdir()) == ['bomb.zip']
    assert (ff.data.safe_extract(z, tmp_path/'out', max_ratio=10_000)/'zeros.bin').stat().st_size == 64 << 20
