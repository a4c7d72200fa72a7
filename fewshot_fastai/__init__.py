"fewshot_fastai: few-shot and one-shot image learning on fastai"
import warnings
# timm calls torch.jit.script at import, which torch 2.1x deprecates with a FutureWarning on every import
warnings.filterwarnings("ignore", message=".*torch.jit.script. is deprecated")
from ._version import __version__
from .data.sources import omniglot, orl_faces, fetch_zip, safe_extract, download, check_hash, cache_dir
from .data.items import ClassFolder, LazyImages, IndexedView, decoded_bytes, alphabet_of, label_of
from .data.pairs import SiameseImage, SiameseDataLoaders, PairSampler, class_split
from .models.backbones import wrn, resnet12
from .models.encoders import koch_net, conv4, efficientnet_lite0, imagenet_batch, TapGrid, create_encoder, resolve_arch, PretrainedUnavailable
from .models.heads import ConcatHead, L1Head, DistanceHead, CosineHead
from .models.siamese import SiameseModel, siamese_splitter
from .losses import ContrastiveLoss, pair_loss, same_probability
from .callbacks.threshold import PairAccuracy, FitThreshold, best_threshold, equal_error_rate, fit_logistic, calibration_error, score_norm
from .learner import siamese_learner, SiameseLearner
from .inference import predict_pair, predict_pairs, to_image, classify, embed, support_scores, SupportSet, shift_views, flip_views, affine_views, tta_views, one_to_one
from .data.strokes import omniglot_strokes, read_strokes, render_strokes, perturb_strokes, drop_hidden_taps, stroke_file, StrokeImages, with_strokes
from .learner import episodic_learner, EpisodicLearner, classifier_learner, ensemble_learner
from .data.episodes import EpisodeSampler, Episode, drawer_of
from .data.episode_loaders import EpisodeDataLoaders, ClassifierDataLoaders, ClassBatches
from .data.augment import Elastic
from .data.ink import ink_center, InkCenter
from .data.runs import lake_runs, load_runs, write_runs
from .models.protonet import ProtoNet, CosineClassifier, EnsembleEncoder
from .callbacks.nway import NWayEval, episode_accuracy, naive_episode_accuracy
from .callbacks.margin import AdditiveMargin
from .interpret.cam import CamResult, cam, cam_result, grad_cam, similarity_maps, PairMaps, last_conv_layer
from .interpret.verbs import pair_top_losses, episode_top_losses
from .interpret.show import cam_bbox, show_cam, show_pair_cam, show_cams, CAMCallback
from .gan.data import GANDataLoaders, NoiseImages, gan_images
from .gan.learner import (dcgan_generator, dcgan_critic, dcgan_init, dcgan_losses, wgan_losses, GANFixes, GANStats,
                          GANNaNStop, dcgan_learner, wgan_learner)
from .deploy import save_model, load_model, export_onnx
from .whitening import Whitening, fit_whitening
from .fusion import ScoreFusion, fit_fusion
from .distrib import unwrap_model, is_main_process, DistribSupport
from .gan.frechet import frechet_distance, FrechetFeatures, lite0_features
from .gan.callbacks import generate, GANSamples, GANFrechet, GANCheckpoint, resume_gan, plot_gan_losses
from .gan.stable import gan_learner
from . import recipes  # noqa: F401  ff.recipes: the registry (names, pick, the recipe functions)
from .recipes import recipe

__all__ = ['__version__', 'omniglot', 'orl_faces', 'fetch_zip', 'safe_extract', 'download', 'check_hash', 'cache_dir',
           'ClassFolder', 'LazyImages', 'IndexedView', 'decoded_bytes', 'alphabet_of', 'label_of', 'SiameseImage', 'SiameseDataLoaders', 'PairSampler', 'class_split',
           'koch_net', 'conv4', 'wrn', 'resnet12', 'efficientnet_lite0', 'imagenet_batch', 'TapGrid', 'create_encoder', 'resolve_arch', 'PretrainedUnavailable',
           'ConcatHead', 'L1Head', 'DistanceHead', 'CosineHead', 'SiameseModel', 'siamese_splitter',
           'ContrastiveLoss', 'pair_loss', 'same_probability', 'PairAccuracy', 'FitThreshold', 'best_threshold', 'equal_error_rate', 'fit_logistic', 'calibration_error', 'score_norm',
           'siamese_learner', 'SiameseLearner', 'predict_pair', 'predict_pairs', 'to_image', 'classify', 'embed', 'support_scores', 'SupportSet', 'shift_views', 'flip_views', 'affine_views', 'tta_views', 'one_to_one',
           'omniglot_strokes', 'read_strokes', 'render_strokes', 'perturb_strokes', 'drop_hidden_taps', 'stroke_file', 'StrokeImages', 'with_strokes', 'Elastic', 'ink_center', 'InkCenter', 'episodic_learner', 'EpisodicLearner', 'pair_top_losses', 'episode_top_losses',
           'EpisodeSampler', 'Episode', 'drawer_of', 'EpisodeDataLoaders', 'ClassifierDataLoaders', 'ClassBatches', 'classifier_learner', 'CosineClassifier', 'lake_runs', 'load_runs', 'write_runs',
           'ProtoNet', 'EnsembleEncoder', 'ensemble_learner', 'NWayEval', 'episode_accuracy', 'naive_episode_accuracy',
           'CamResult', 'cam', 'cam_result', 'grad_cam', 'similarity_maps', 'PairMaps', 'last_conv_layer',
           'cam_bbox', 'show_cam', 'show_pair_cam', 'show_cams', 'CAMCallback',
           'GANDataLoaders', 'NoiseImages', 'gan_images', 'dcgan_generator', 'dcgan_critic', 'dcgan_init', 'dcgan_losses',
           'wgan_losses', 'GANFixes', 'GANStats', 'GANNaNStop', 'dcgan_learner', 'wgan_learner', 'frechet_distance',
           'FrechetFeatures', 'lite0_features', 'generate', 'GANSamples', 'GANFrechet', 'GANCheckpoint', 'resume_gan',
           'plot_gan_losses', 'unwrap_model', 'is_main_process', 'DistribSupport', 'save_model', 'load_model', 'export_onnx', 'AdditiveMargin', 'Whitening', 'fit_whitening', 'ScoreFusion', 'fit_fusion', 'recipe', 'gan_learner']
