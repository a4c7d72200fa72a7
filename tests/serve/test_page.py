"""The web page at `/`, in Debian's chromium through Playwright (as the docs check): enrol two classes, recognise a
third image, delete a class; screenshots kept beside the gallery and checked."""
import shutil
import httpx
import pytest

def test_page_enrols_recognises_and_deletes(Serve, episodic_model, chars, tmp_path):
    from playwright.sync_api import sync_playwright, expect
    exe = shutil.which('chromium') or shutil.which('chromium-browser')
    if exe is None: pytest.fail('chromium not found: `make chromium` installs Debian\'s')
    a, b = list(chars)[:2]
    shots = tmp_path/'shots'; shots.mkdir()
    with Serve(episodic_model, tmp_path/'g.db') as s, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=['--no-sandbox'])
        page = browser.new_page(viewport={'width': 1000, 'height': 900})
        failed = []
        page.on('requestfailed', lambda r: failed.append(r.url))
        page.on('pageerror', lambda e: failed.append(str(e)))
        page.goto(s.url + '/')
        expect(page.locator('#gallery-status')).to_have_text('no classes yet', timeout=20_000)
        for label in (a, b):
            page.fill('#label', label)
            page.set_input_files('#files', [str(f) for f in chars[label][:3]])
            expect(page.locator('#chosen')).to_contain_text('3 image(s)')
            page.click('#enrol-button')
            expect(page.locator('#enrol-status')).to_have_text(f'enrolled 3 new image(s) of {label}: 3 in all', timeout=30_000)
        rows = page.locator('#gallery tbody tr')
        expect(rows).to_have_count(2, timeout=20_000)
        expect(page.locator(f'#gallery tr[data-label="{a}"] img')).to_have_count(3, timeout=20_000)   # thumbnails
        expect(page.locator('#health')).to_contain_text('2 classes, 6 images')
        page.screenshot(path=str(shots/'enrolled.png'))
        page.set_input_files('#query', str(chars[a][0]))   # an enrolled drawing: its class first
        page.click('#recognise-button')
        expect(page.locator('#answer .best')).to_have_text(f'answer: {a}', timeout=30_000)
        expect(page.locator('#answer li')).to_have_count(2)
        expect(page.locator('#overlay')).to_be_visible(timeout=30_000)
        assert page.locator('#overlay').evaluate('im => im.naturalWidth') > 50   # the similarity maps were drawn
        page.screenshot(path=str(shots/'recognised.png'))
        page.click(f'#gallery tr[data-label="{b}"] button.delete')
        expect(page.locator('#gallery-status')).to_contain_text(f'deleted {b} (3 images)', timeout=20_000)
        expect(rows).to_have_count(1)
        page.screenshot(path=str(shots/'deleted.png'))
        page.fill('#label', 'a/b'); page.set_input_files('#files', [str(chars[a][4])]); page.click('#enrol-button')
        expect(page.locator('#enrol-status')).to_contain_text('may not hold "/"', timeout=20_000)
        expect(page.locator('#enrol-status')).to_have_class('error')
        assert not failed, failed   # nothing the page asked for failed, no script error
        browser.close()
        assert httpx.get(s.url + '/classes').json()['classes'] == [dict(label=a, images=3)]
    for name in ('enrolled', 'recognised', 'deleted'):
        from PIL import Image
        im = Image.open(shots/f'{name}.png')
        assert im.size == (1000, 900) and len(set(im.convert('L').getdata())) > 20   # a rendered page, not a blank one
