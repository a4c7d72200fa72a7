"""GANs: image loaders, DCGAN/WGAN nets and learners, stable training for small data (hinge, WGAN-GP, DiffAugment,
generator EMA), sampling and checkpoint callbacks, and the Fréchet distance on local features."""
from .._checks import moved_to
from .data import NoiseImages, GANDataLoaders, gan_images
from .learner import (dcgan_generator, dcgan_critic, dcgan_init, dcgan_losses, wgan_losses, GANFixes, GANStats,
                      GANNaNStop, dcgan_learner, wgan_learner)
from .stable import hinge_losses, sn_critic, diff_augment, DiffAugment, add_to_loss, GradientPenalty, GeneratorEMA, gan_learner
from .callbacks import generate, GANSamples, GANFrechet, GANCheckpoint, resume_gan, plot_gan_losses, epochs_done
from .frechet import frechet_distance, FrechetFeatures, lite0_features
from .oneshot_nets import OneShotGenerator, WarpGenerator, pair_critic
from .oneshot_data import OneShotPairs, OneShotDataLoaders
from .oneshot import GeneratorConfig, SourceConsistency, ModeSeeking, oneshot_learner, generate_like, generated_grid
from .variants import with_generated, GeneratedVariants

__all__ = ['NoiseImages', 'GANDataLoaders', 'gan_images', 'dcgan_generator', 'dcgan_critic', 'dcgan_init', 'dcgan_losses',
           'wgan_losses', 'GANFixes', 'GANStats', 'GANNaNStop', 'dcgan_learner', 'wgan_learner', 'hinge_losses',
           'sn_critic', 'diff_augment', 'DiffAugment', 'add_to_loss', 'GradientPenalty', 'GeneratorEMA', 'gan_learner', 'generate',
           'GANSamples', 'GANFrechet', 'GANCheckpoint', 'resume_gan', 'plot_gan_losses', 'epochs_done',
           'frechet_distance', 'FrechetFeatures', 'lite0_features', 'OneShotGenerator', 'WarpGenerator', 'pair_critic', 'SourceConsistency', 'ModeSeeking', 'OneShotPairs',
           'OneShotDataLoaders', 'GeneratorConfig', 'oneshot_learner', 'generate_like', 'generated_grid', 'with_generated', 'GeneratedVariants']

# the one-shot generation measures moved to ff.evaluate: their old place answers for one release, with a warning
__getattr__ = moved_to(__name__, 'fewshot_fastai.evaluate', {'OneShotTrial', 'oneshot_trials', 'recognisability', 'diversity'})
