"""fewshot_fastai: few-shot and one-shot image learning on fastai.

The root holds the user verbs: loaders, learners, inference, CAM, GAN learners, deployment, recipes. Everything else is
reached through its sub-package: `ff.data`, `ff.datasets` (Omniglot/ORL specifics), `ff.models`, `ff.callbacks`,
`ff.verification` (scoring maths), `ff.methods` (few-shot classifiers on one contract), `ff.evaluate` (every evaluation protocol), `ff.serve` (the gallery and the HTTP app), `ff.interpret`, `ff.gan`, `ff.recipes`; and the modules `ff.losses`, `ff.learner`,
`ff.inference`, `ff.deploy`."""
import warnings
# timm calls torch.jit.script at import, which torch 2.1x deprecates with a FutureWarning on every import
warnings.filterwarnings("ignore", message=".*torch.jit.script. is deprecated")
from ._version import __version__
from . import data, datasets, models, losses, verification, methods, callbacks, evaluate, learner, inference, interpret, gan, deploy, recipes, serve  # noqa: F401
from .datasets.sources import omniglot, orl_faces
from .data.items import ClassFolder
from .data.pairs import SiameseImage, SiameseDataLoaders
from .data.episode_loaders import EpisodeDataLoaders
from .data.classifier_loaders import ClassifierDataLoaders
from .models.registry import create_encoder, list_encoders
from .models.pretrained import efficientnet_lite0
from .models.siamese import SiameseModel, siamese_splitter
from .models.protonet import ProtoNet
from .learner import siamese_learner, episodic_learner, classifier_learner, ensemble_learner
from .callbacks.nway import NWayEval
from .evaluate import episode_accuracy
from .callbacks.threshold import PairAccuracy, FitThreshold
from .inference import predict_pair, predict_pairs, classify, embed, SupportSet, tta_views
from .interpret.maps import cam, grad_cam
from .interpret.pairs import similarity_maps
from .interpret.show import show_cam, show_pair_cam, show_cams, CAMCallback
from .gan.data import GANDataLoaders
from .gan.learner import dcgan_learner, wgan_learner
from .gan.stable import gan_learner
from .gan.oneshot import OneShotDataLoaders, oneshot_learner, generate_like
from .gan.callbacks import generate, GANSamples, GANFrechet, GANCheckpoint, resume_gan
from .config import ModelConfig
from .deploy import save_model, load_model, export_onnx
from .recipes import recipe
from .serve import Gallery

__all__ = ['__version__',
           # data
           'omniglot', 'orl_faces', 'ClassFolder', 'SiameseImage', 'SiameseDataLoaders', 'EpisodeDataLoaders',
           'ClassifierDataLoaders',
           # models
           'create_encoder', 'list_encoders', 'efficientnet_lite0', 'SiameseModel', 'siamese_splitter', 'ProtoNet',
           # learners and their callbacks
           'siamese_learner', 'episodic_learner', 'classifier_learner', 'ensemble_learner', 'NWayEval', 'PairAccuracy',
           'FitThreshold',
           # inference
           'predict_pair', 'predict_pairs', 'classify', 'embed', 'SupportSet', 'episode_accuracy', 'tta_views',
           # interpretation
           'cam', 'grad_cam', 'similarity_maps', 'show_cam', 'show_pair_cam', 'show_cams', 'CAMCallback',
           # GANs
           'GANDataLoaders', 'gan_learner', 'dcgan_learner', 'wgan_learner', 'generate', 'GANSamples', 'GANFrechet',
           'GANCheckpoint', 'resume_gan', 'OneShotDataLoaders', 'oneshot_learner', 'generate_like',
           # deployment and recipes
           'ModelConfig', 'save_model', 'load_model', 'export_onnx', 'recipe', 'Gallery']
