"""Generic data: sources (download, checksum, safe extraction, cache), folder-per-class items (eager or lazy),
class splits, image pairs (`SiameseImage`, a fastai DataBlock), N-way K-shot episodes and their loaders, augmentation."""
from .sources import cache_dir, file_hash, check_hash, safe_extract, download, fetch_zip, MAX_EXTRACT_BYTES, MAX_EXTRACT_RATIO
from .items import ClassFolder, LazyImages, IndexedView, label_of
from .images import decoded_bytes, decode_image, canonical_image, to_image
from .split import class_split, held_out_classes
from .prep import register_prep, prep_config, prep_from_config, batch_prep, batch_tfms
from .pairs import SiameseImage, PAIR_LABELS, IMAGE_MODES, PairSampler, PairDL, SiameseDataLoaders, find_pair_sampler
from .episodes import Episode, EpisodeSampler
from .show import EpisodeImages, EpisodeQueries, QueryRef, show_titled
from .tensors import image_tensor, LazyImageTensor
from .episode_loaders import EpisodeDataset, EpisodeDL, EpisodeDataLoaders
from .classifier_loaders import ClassBatches, ClassifierDataLoaders
from .augment import Elastic

__all__ = ['cache_dir', 'file_hash', 'check_hash', 'safe_extract', 'download', 'fetch_zip', 'MAX_EXTRACT_BYTES',
           'MAX_EXTRACT_RATIO', 'ClassFolder', 'LazyImages', 'IndexedView', 'decoded_bytes', 'decode_image', 'label_of',
           'to_image', 'class_split', 'held_out_classes', 'register_prep', 'prep_config', 'prep_from_config', 'batch_prep', 'batch_tfms', 'SiameseImage', 'PAIR_LABELS', 'IMAGE_MODES', 'PairSampler', 'PairDL',
           'SiameseDataLoaders', 'find_pair_sampler', 'EpisodeImages', 'EpisodeQueries', 'QueryRef', 'show_titled', 'Episode', 'EpisodeSampler', 'image_tensor', 'LazyImageTensor',
           'EpisodeDataset', 'EpisodeDL', 'EpisodeDataLoaders', 'ClassBatches', 'ClassifierDataLoaders', 'Elastic']
