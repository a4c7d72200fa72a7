// The gallery page: plain JavaScript over the app's own JSON API (nothing loaded from elsewhere, no build step).
'use strict';
const $ = (id) => document.getElementById(id);
let chosen = [];

function say(id, text, isError) {
  const el = $(id);
  el.textContent = text;
  el.className = isError ? 'error' : '';
}

async function call(method, url, body) {
  const res = await fetch(url, { method, body });
  let data = {};
  try { data = await res.json(); } catch (e) { data = { error: `HTTP ${res.status}` }; }
  if (!res.ok) throw new Error(data.error || `HTTP ${res.status}`);
  return data;
}

async function health() {
  try {
    const h = await call('GET', '/healthz');
    const t = h.threshold === null ? 'no threshold' : `unknown below ${h.threshold.toFixed(4)} (${h.threshold_source})`;
    $('health').textContent = `${h.model}: ${h.classes} classes, ${h.images} images; ${t}`;
  } catch (e) { $('health').textContent = `server unreachable: ${e.message}`; }
}

async function refresh(note) {
  const body = $('gallery').querySelector('tbody');
  try {
    const { classes } = await call('GET', '/classes');
    body.replaceChildren();
    for (const c of classes) {
      const tr = document.createElement('tr');
      tr.dataset.label = c.label;
      const name = document.createElement('td'); name.textContent = c.label; name.className = 'label';
      const n = document.createElement('td'); n.textContent = c.images;
      const th = document.createElement('td');
      const del = document.createElement('td');
      const b = document.createElement('button'); b.textContent = 'Delete'; b.className = 'delete';
      b.setAttribute('aria-label', `delete ${c.label}`);
      b.addEventListener('click', () => remove(c.label));
      del.append(b);
      tr.append(name, n, th, del);
      body.append(tr);
      call('GET', `/classes/${encodeURIComponent(c.label)}/thumbnails?limit=4`).then(({ thumbnails }) => {
        for (const src of thumbnails) { const im = document.createElement('img'); im.src = src; im.alt = c.label; th.append(im); }
      }).catch(() => {});
    }
    const count = classes.length ? `${classes.length} ${classes.length === 1 ? 'class' : 'classes'}` : 'no classes yet';
    if (note) say(note.id, note.text, note.isError); else say('gallery-status', count);
  } catch (e) { say('gallery-status', e.message, true); }
  health();
}

async function remove(label) {
  let note;
  try {
    const r = await call('DELETE', `/classes/${encodeURIComponent(label)}`);
    note = { id: 'gallery-status', text: `deleted ${r.label} (${r.deleted} images)` };
  } catch (e) { note = { id: 'gallery-status', text: e.message, isError: true }; }
  refresh(note);
}

function choose(files) {
  chosen = Array.from(files);
  $('chosen').textContent = chosen.length ? `${chosen.length} image(s): ${chosen.map((f) => f.name).join(', ')}` : '';
}

async function enrol(ev) {
  ev.preventDefault();
  const label = $('label').value.trim();
  if (!label) return say('enrol-status', 'a label is needed', true);
  if (!chosen.length) return say('enrol-status', 'drop or choose some images first', true);
  const form = new FormData();
  for (const f of chosen) form.append('images', f, f.name);
  say('enrol-status', 'enrolling…');
  try {
    const r = await call('POST', `/classes/${encodeURIComponent(label)}/images`, form);
    say('enrol-status', `enrolled ${r.added} new image(s) of ${r.label}: ${r.images} in all`);
    choose([]); $('files').value = '';
  } catch (e) { say('enrol-status', e.message, true); }
  refresh();
}

async function recognise(ev) {
  ev.preventDefault();
  const f = $('query').files[0];
  const out = $('answer');
  if (!f) return say('answer', 'choose an image first', true);
  const form = new FormData(); form.append('image', f, f.name);
  out.textContent = 'recognising…'; out.className = '';
  $('overlay').hidden = true;
  try {
    const r = await call('POST', '/classify?k=3&overlay=true', form);
    out.replaceChildren();
    const head = document.createElement('p');
    if (r.unknown) { head.textContent = 'unknown: no enrolled class is close enough'; head.className = 'unknown'; }
    else { head.textContent = `answer: ${r.label}`; head.className = 'best'; }
    const ol = document.createElement('ol');
    for (const t of r.top) { const li = document.createElement('li'); li.textContent = `${t.label} (score ${t.score.toFixed(4)})`; ol.append(li); }
    out.append(head, ol);
    if (r.overlay) { $('overlay').src = r.overlay; $('overlay').alt = `similarity maps against ${r.top[0].label}`; $('overlay').hidden = false; }
  } catch (e) { say('answer', e.message, true); }
}

document.addEventListener('DOMContentLoaded', () => {
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); choose(e.dataTransfer.files); });
  $('files').addEventListener('change', (e) => choose(e.target.files));
  $('enrol').addEventListener('submit', enrol);
  $('recognise').addEventListener('submit', recognise);
  refresh();
});
