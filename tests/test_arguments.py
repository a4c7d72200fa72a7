"Every public entry point rejects impossible arguments with an error naming the argument and its value"
import pytest
from fastai.vision.all import Resize, PILImageBW
import fewshot_fastai as ff

@pytest.fixture(scope='module')
def cf(omni_small): return ff.ClassFolder(omni_small)

@pytest.fixture(scope='module')
def learn(omni_dls): return ff.siamese_learner(omni_dls, ff.models.conv4, head='l1')

CASES = [
    ('ClassFolder min_per_class', lambda p, cf, l: ff.ClassFolder(p, min_per_class=0), 'min_per_class=0'),
    ('ClassFolder cache_size', lambda p, cf, l: ff.ClassFolder(p, cache_size=-1), 'cache_size=-1'),
    ('ClassFolder max_bytes', lambda p, cf, l: ff.ClassFolder(p, max_bytes=0), 'max_bytes=0'),
    ('SiameseDataLoaders bs', lambda p, cf, l: ff.SiameseDataLoaders.from_class_folder(cf, bs=0), 'bs=0'),
    ('SiameseDataLoaders valid_pct', lambda p, cf, l: ff.SiameseDataLoaders.from_class_folder(cf, valid_pct=1.5), 'valid_pct must be in'),
    ('EpisodeDataLoaders size', lambda p, cf, l: ff.EpisodeDataLoaders.from_class_folder(cf, size=0), 'size=0'),
    ('EpisodeDataLoaders episodes', lambda p, cf, l: ff.EpisodeDataLoaders.from_class_folder(cf, episodes_per_epoch=0), 'episodes_per_epoch=0'),
    ('EpisodeDataLoaders rotations', lambda p, cf, l: ff.EpisodeDataLoaders.from_class_folder(cf, rotations=-4), 'rotations=-4'),
    # 5 would repeat the unrotated view as a second class
    ('EpisodeDataLoaders rotations 5', lambda p, cf, l: ff.EpisodeDataLoaders.from_class_folder(cf, rotations=5), 'rotations=5'),
    ('ClassifierDataLoaders rotations', lambda p, cf, l: ff.ClassifierDataLoaders.from_class_folder(cf, rotations=6), 'rotations=6'),
    ('EpisodeDataLoaders n_way', lambda p, cf, l: ff.EpisodeDataLoaders.from_class_folder(cf, n_way=0), 'n_way=0'),
    ('EpisodeSampler k_shot', lambda p, cf, l: ff.data.EpisodeSampler(cf.labels, k_shot=-1), 'k_shot=-1'),
    ('siamese_learner emb_dim', lambda p, cf, l: ff.siamese_learner(l.dls, ff.models.conv4, head='contrastive', emb_dim=0), 'emb_dim=0'),
    ('siamese_learner margin', lambda p, cf, l: ff.siamese_learner(l.dls, ff.models.conv4, head='contrastive', margin=-1.0), 'margin=-1.0'),
    ('siamese_learner head', lambda p, cf, l: ff.siamese_learner(l.dls, ff.models.conv4, head='dot'), "unknown head 'dot'"),
    ('episodic pool', lambda p, cf, l: ff.ProtoNet(ff.models.conv4(), pool='max'), "pool='max'"),
    ('embed bs', lambda p, cf, l: ff.embed(l, cf.files[:2], bs=0), 'bs=0'),
    ('predict_pairs bs', lambda p, cf, l: ff.predict_pairs(l, [(cf.files[0], cf.files[1])], bs=-2), 'bs=-2'),
    ('classify empty class', lambda p, cf, l: ff.classify(l, cf.files[:2], {'a': cf.files[:1], 'b': []}), "label 'b' has no images"),
    ('classify mode', lambda p, cf, l: ff.classify(l, cf.files[:2], {'a': cf.files[:1]}, method='vote'), "method 'vote'"),
    ('SupportSet bs', lambda p, cf, l: ff.SupportSet(l, bs=0), 'bs=0'),
    ('NWayEval n_way', lambda p, cf, l: ff.NWayEval(cf.images, cf.labels, n_way=1), 'n_way=1'),
    ('GANDataLoaders bs', lambda p, cf, l: ff.GANDataLoaders.from_folder(p, bs=0), 'bs=0'),
    ('dcgan size', lambda p, cf, l: ff.gan.dcgan_generator(48), 'size=48'),
    ('cam method', lambda p, cf, l: ff.cam(ff.models.conv4(1), __import__('torch').rand(1, 1, 28, 28), method='best'), 'best'),
]

@pytest.mark.parametrize('what,call,msg', CASES, ids=[c[0] for c in CASES])
def test_impossible_arguments(what, call, msg, omni_small, cf, learn):
    with pytest.raises((ValueError, TypeError), match=__import__('re').escape(msg)): call(omni_small, cf, learn)
