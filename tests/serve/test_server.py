"""`fewshot-fastai serve`: a real uvicorn process on 127.0.0.1, real HTTP (httpx and raw sockets), a real SQLite gallery."""
import io, os, signal, socket, sqlite3, threading, time
import httpx
import pytest
from PIL import Image

def _files(paths, field='images'): return [(field, (p.name, p.read_bytes(), 'image/png')) for p in paths]

@pytest.fixture(scope='module')
def server(Serve, episodic_model, tmp_path_factory):
    with Serve(episodic_model, tmp_path_factory.mktemp('g')/'gallery.db', '--max-files', 8) as s: yield s

@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        for row in c.get('/classes').json()['classes']: c.delete(f"/classes/{row['label']}")
        yield c

def test_enrol_list_classify_delete(client, chars):
    a, b, c = list(chars)[:3]
    r = client.post(f'/classes/{a}/images', files=_files(chars[a][:3]))
    assert r.status_code == 201 and r.json() == dict(label=a, added=3, images=3)
    r = client.post(f'/classes/{a}/images', files=_files(chars[a][2:4]))   # one of the two already there
    assert r.status_code == 201 and r.json() == dict(label=a, added=1, images=4)
    assert client.post(f'/classes/{b}/images', files=_files(chars[b][:4])).status_code == 201
    assert client.get('/classes').json() == {'classes': [dict(label=a, images=4), dict(label=b, images=4)]}
    r = client.post('/classify', files=_files(chars[a][:1], 'image'), params={'k': 2})   # an enrolled image: its own class
    body = r.json()
    assert r.status_code == 200 and body['label'] == a and not body['unknown'] and [t['label'] for t in body['top']] == [a, b]
    assert body['top'][0]['score'] >= body['top'][1]['score']
    h = client.get('/healthz').json()
    assert h['status'] == 'ok' and h['classes'] == 2 and h['images'] == 8
    assert client.delete(f'/classes/{a}').json() == dict(label=a, deleted=4)
    r = client.delete(f'/classes/{a}')
    assert r.status_code == 404 and r.json() == {'error': f"no class {a!r} in the gallery"}
    assert client.get('/classes').json()['classes'] == [dict(label=b, images=4)]
    m = client.get('/metrics').text
    assert 'fewshot_gallery_images 4.0' in m and 'fewshot_requests_total{endpoint="/classify",status="200"}' in m
    assert 'fewshot_request_seconds_bucket' in m
    assert '/classify' in client.get('/openapi.json').json()['paths'] and client.get('/docs').status_code == 200
    page = client.get('/')
    assert page.status_code == 200 and 'Enrol a class' in page.text and "default-src 'self'" in page.headers['content-security-policy']
    r = client.post('/verify', files=_files(chars[b][:1], 'a') + _files(chars[b][1:2], 'b'))
    assert r.status_code == 400 and 'does not verify pairs' in r.json()['error']

def test_verify_with_a_pair_model(Serve, pair_model, chars, tmp_path):
    a, b = list(chars)[:2]
    with Serve(pair_model, tmp_path/'g.db') as s, httpx.Client(base_url=s.url, timeout=60) as c:
        r = c.post('/verify', files=_files(chars[a][:1], 'a') + _files(chars[a][:1], 'b'))
        assert r.status_code == 200 and r.json()['same'] is True and 0.5 <= r.json()['probability'] <= 1
        assert c.post('/classes/x/images', files=_files(chars[a][:2])).status_code == 201
        assert c.post('/classify', files=_files(chars[a][:1], 'image')).json()['label'] == 'x'

def _png(im) -> bytes:
    buf = io.BytesIO(); im.save(buf, format='PNG'); return buf.getvalue()

def test_bad_input_is_one_line_4xx_and_the_gallery_intact(client, server, chars):
    a = list(chars)[0]
    good = chars[a][0].read_bytes()
    assert client.post(f'/classes/{a}/images', files=_files(chars[a][:2])).status_code == 201
    bomb = _png(Image.new('L', (8000, 8000)))   # 64 Mpx in a few kB
    cases = [
        ('text', [('images', ('notes.txt', b'hello, not an image', 'text/plain'))], 415, "images[0] 'notes.txt': not an image"),
        ('truncated', [('images', ('cut.png', good[:len(good)//2], 'image/png'))], 400, "'cut.png': a truncated or damaged image"),
        ('zero bytes', [('images', ('empty.png', b'', 'image/png'))], 400, "'empty.png': an empty file"),
        ('bomb', [('images', ('bomb.png', bomb, 'image/png'))], 413, '8000x8000 pixels, more than the 40,000,000'),
        ('too many', _files(chars[a][:1])*9, 413, '9 files in'),
        ('good then bad', _files(chars[a][2:3]) + [('images', ('x.png', b'\x89PNG\r\n\x1a\n' + b'0'*50, 'image/png'))], 415, "images[1] 'x.png'"),
    ]
    for what, files, status, msg in cases:
        r = client.post(f'/classes/{a}/images', files=files)
        assert r.status_code == status and msg in r.json()['error'], (what, r.status_code, r.text)
        assert '\n' not in r.json()['error'] and list(r.json()) == ['error']
    r = client.post(f'/classes/{a}/images', data={'other': 'x'})
    assert r.status_code == 422 and r.json()['error'] == "field 'images': required (multipart/form-data)"
    r = client.post('/classify')
    assert r.status_code == 422 and "'image'" in r.json()['error']
    r = client.post('/classify', files=_files(chars[a][:1], 'image'), params={'k': 0})
    assert r.status_code == 422 and r.json()['error'].startswith('k:')
    for label, status, msg in (('..%2Fetc', 400, 'may not hold'), ('a%2Fb', 400, 'may not hold'), ('%2E%2E', 400, 'not a class name'),
                               ('%20x', 400, 'space'), ('a%00b', 400, 'control')):
        r = client.post(f'/classes/{label}/images', files=_files(chars[a][:1]))
        assert r.status_code == status and msg in r.json()['error'], (label, r.text)
    r = client.post('/classes/Jos%C3%A9%20Garc%C3%ADa/images', files=_files(chars[a][:1]))   # spaces inside and unicode: a name
    assert r.status_code == 201 and r.json()['label'] == 'José García'
    assert client.get('/nowhere').json()['error'].startswith('no such endpoint: GET /nowhere')
    assert client.get('/classes').json()['classes'] == [dict(label=a, images=2), dict(label='José García', images=1)]
    # 60 MB declared: refused from the headers, before the body
    with socket.create_connection(('127.0.0.1', server.port), timeout=20) as s:
        s.sendall(f'POST /classes/{a}/images HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n'
                  f'Content-Length: {60*2**20}\r\n\r\n'.encode())
        reply = b''
        while not reply.endswith(b'}'):   # the status line, the headers and the JSON may come in separate packets
            chunk = s.recv(4096)
            if not chunk: break
            reply += chunk
        reply = reply.decode()
    assert reply.startswith('HTTP/1.1 413') and 'request body over 20,971,520 bytes' in reply
    # 21 MB streamed without a length: counted as it comes
    def chunks():
        for _ in range(21): yield b'x'*2**20
    r = client.post(f'/classes/{a}/images', content=chunks(), headers={'content-type': 'multipart/form-data; boundary=b'})
    assert r.status_code == 413 and 'request body over' in r.json()['error']
    assert client.get('/classes').json()['classes'][0] == dict(label=a, images=2)
    assert 'status="500"' not in client.get('/metrics').text

def test_empty_gallery_and_limits(Serve, episodic_model, chars, tmp_path):
    a = list(chars)[0]
    with Serve(episodic_model, tmp_path/'g.db', '--max-gallery-mb', 0.05) as s, httpx.Client(base_url=s.url, timeout=60) as c:
        r = c.post('/classify', files=_files(chars[a][:1], 'image'))
        assert r.status_code == 409 and 'no classes yet' in r.json()['error']
        answered, status = 0, 201
        while status == 201 and answered < 200:
            r = c.post(f'/classes/c{answered}/images', files=_files(chars[a][:6]))
            status = r.status_code; answered += status == 201
        assert status == 507 and 'full' in r.json()['error'] and answered > 0
        assert c.get('/healthz').json()['images'] == 6*answered
    assert sqlite3.connect(tmp_path/'g.db').execute('PRAGMA integrity_check').fetchone()[0] == 'ok'
    with Serve(episodic_model, tmp_path/'g.db', '--read-only') as s, httpx.Client(base_url=s.url, timeout=60) as c:
        r = c.post('/classes/new/images', files=_files(chars[a][:1]))
        assert r.status_code == 503 and 'read-only' in r.json()['error']
        assert c.delete('/classes/c0').status_code == 503
        assert c.post('/classify', files=_files(chars[a][:1], 'image')).status_code == 200
        assert c.get('/healthz').json()['images'] == 6*answered

def test_delete_while_enrolling_keeps_whole_transactions(client, chars):
    a = list(chars)[0]
    stop, errors = threading.Event(), []
    def enrol():
        while not stop.is_set():
            r = client.post(f'/classes/{a}/images', files=_files(chars[a][:5]))
            if r.status_code != 201: errors.append(r.text)
    def delete():
        while not stop.is_set():
            r = client.delete(f'/classes/{a}')
            if r.status_code not in (200, 404): errors.append(r.text)
    ts = [threading.Thread(target=enrol), threading.Thread(target=delete)]
    for t in ts: t.start()
    time.sleep(6); stop.set()
    for t in ts: t.join(60)
    assert not errors
    rows = client.get('/classes').json()['classes']
    assert rows in ([], [dict(label=a, images=5)])   # never a partial class

def _children(pid):
    import psutil
    return psutil.Process(pid).children(recursive=True)

def test_two_workers_share_the_gallery_and_kill_9_of_one_loses_no_answered_enrolment(Serve, episodic_model, chars, tmp_path):
    path, a = tmp_path/'g.db', list(chars)[0]
    answered, lock, stop = [], threading.Lock(), threading.Event()
    with Serve(episodic_model, path, '--workers', 2) as s:
        workers = _children(s.proc.pid)
        assert len([p for p in workers if 'python' in p.name()]) >= 2
        labels = list(chars)[:4]
        clients = [httpx.Client(base_url=s.url, timeout=60) for _ in range(4)]   # separate connections reach both workers
        for c, l in zip(clients, labels): assert c.post(f'/classes/{l}/images', files=_files(chars[l][:3])).status_code == 201
        for c in clients:
            for _ in range(3): assert c.get('/healthz').json()['images'] == 12   # whichever worker answers: no stale cache
        assert 'fewshot_requests_total{endpoint="/classes/{label}/images",status="201"} 4.0' in clients[0].get('/metrics').text
        for c in clients: c.close()
        def enrol(t):
            with httpx.Client(base_url=s.url, timeout=30) as c:
                n = 0
                while not stop.is_set() and n < 400:
                    label = f't{t}-{n}'; n += 1
                    try: r = c.post(f'/classes/{label}/images', files=_files(chars[a][t:t+1]))
                    except httpx.HTTPError: continue   # in flight when the worker died
                    if r.status_code == 201:
                        with lock: answered.append(label)
        ts = [threading.Thread(target=enrol, args=(t,)) for t in range(3)]
        for t in ts: t.start()
        time.sleep(2.5)
        victim = max(workers, key=lambda p: p.pid)
        os.kill(victim.pid, signal.SIGKILL)
        time.sleep(1.5); stop.set()
        for t in ts: t.join(60)
    assert len(answered) > 10
    assert sqlite3.connect(path).execute('PRAGMA integrity_check').fetchone()[0] == 'ok'
    with Serve(episodic_model, path) as s, httpx.Client(base_url=s.url, timeout=60) as c:
        rows = {r['label']: r['images'] for r in c.get('/classes').json()['classes']}
    assert set(answered) <= set(rows) and all(rows[l] == 1 for l in answered)   # each answered enrolment there, once
    assert all(rows[l] == 3 for l in labels)
