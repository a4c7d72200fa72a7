"Scanning class folders on real images, and every kind of bad input"
import shutil
import pytest
import fewshot_fastai as ff

@pytest.fixture
def small(omni_small, tmp_path):
    "A writable copy of 24 real Omniglot characters"
    return shutil.copytree(omni_small, tmp_path/'ds')

def test_nested_labels_and_alphabets(omni_small):
    cf = ff.ClassFolder(omni_small)
    assert len(cf.classes) == 24 and len(cf) == 24*20
    assert all(c.count('/') == 1 for c in cf.classes)   # Alphabet/characterNN
    assert {ff.datasets.alphabet_of(c) for c in cf.classes} <= {'Balinese', 'Early_Aramaic', 'Greek', 'Korean', 'Latin'}
    assert [cf.classes[l] for l in cf.labels] == [ff.data.label_of(f, omni_small) for f in cf.files]
    assert cf.images[0].size == (105, 105)

def test_orl_subjects(orl):
    cf = ff.ClassFolder(orl)   # the README at the top level is not a class
    assert len(cf.classes) == 40 and len(cf) == 400 and cf.images[0].size == (92, 112)

def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere'): ff.ClassFolder(tmp_path/'nowhere')

def test_empty_class_folder_skipped_with_warning(small):
    (small/'Greek'/'character99').mkdir()
    with pytest.warns(UserWarning, match='character99: empty class folder'):
        cf = ff.ClassFolder(small)
    assert len(cf.classes) == 24

def test_class_with_one_image_dropped_with_warning(small):
    one = small/'Korean'/'character99'; one.mkdir()
    shutil.copy(next(small.rglob('*.png')), one/'only.png')
    with pytest.warns(UserWarning, match=r"Korean/character99' has 1 image\(s\) \(only.png\)"):
        cf = ff.ClassFolder(small)
    assert 'Korean/character99' not in cf.classes

def test_non_image_file_skipped_with_warning(small):
    cls = next(p for p in small.rglob('*') if p.is_dir() and not any(q.is_dir() for q in p.iterdir()))
    (cls/'notes.txt').write_text('hello')
    with pytest.warns(UserWarning, match='notes.txt: not an image file'):
        cf = ff.ClassFolder(small)
    assert not any(f.name == 'notes.txt' for f in cf.files)

def test_corrupt_image_raises_naming_it(small):
    bad = next(small.rglob('*.png'))
    bad.write_bytes(b'\x89PNG\r\n\x1a\n garbage')
    with pytest.raises(ValueError, match=f'{bad.name}: not a readable image'): ff.ClassFolder(small)

def test_too_few_classes(tmp_path, omni_small):
    src = next(p for p in omni_small.rglob('*') if p.is_dir() and not any(q.is_dir() for q in p.iterdir()))
    shutil.copytree(src, tmp_path/'only')
    with pytest.raises(ValueError, match='1 usable class'): ff.ClassFolder(tmp_path)

def test_files_by_class_and_files_of(omni_small):
    "The support sets callers build: {label: files}, at most k a class, in the classes' order asked for"
    cf = ff.ClassFolder(omni_small)
    names = cf.label_names()
    c0, c1 = cf.classes[:2]
    by = cf.files_by_class(2, classes=[c1, c0])
    assert list(by) == [c1, c0] and all(len(fs) == 2 for fs in by.values())
    for c, fs in by.items():
        assert fs == [f for f, l in zip(cf.files, names) if l == c][:2]
    every = cf.files_by_class()
    assert list(every) == cf.classes and sum(map(len, every.values())) == len(cf.files)
    assert every[c0] == cf.files_of(c0) and len(cf.files_of(c0)) == names.count(c0)
    with pytest.raises(KeyError, match='no class'): cf.files_by_class(1, classes=['nope'])
    with pytest.raises(KeyError, match='no class'): cf.files_of('nope')
    with pytest.raises(ValueError, match='k=0'): cf.files_by_class(0)
