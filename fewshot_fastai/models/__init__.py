"""Models: encoders (a registry, one module per family), pair heads, `SiameseModel`, `ProtoNet`."""
from .registry import (PretrainedUnavailable, EncoderEntry, register_encoder, list_encoders, resolve_arch, known_arch,
                       arch_name, create_encoder, encoder_features)
from ._conv4 import conv4
from .koch import koch_net
from ._wrn import wrn
from ._resnet12 import resnet12
from .pretrained import efficientnet_lite0, imagenet_batch
from .face_net import FaceResNet, face_resnet, load_dlib_face_resnet
from .taps import TapGrid
from .heads import PairHead, ConcatHead, L1Head, DistanceHead, CosineHead, HEADS, create_pair_head
from .siamese import SiameseModel, siamese_splitter
from .protonet import ProtoNet, CosineClassifier, EnsembleEncoder, prototypes, sq_distances

__all__ = ['PretrainedUnavailable', 'EncoderEntry', 'register_encoder', 'list_encoders', 'resolve_arch', 'known_arch',
           'arch_name', 'create_encoder', 'encoder_features', 'conv4', 'koch_net', 'wrn', 'resnet12', 'efficientnet_lite0',
           'imagenet_batch', 'FaceResNet', 'face_resnet', 'load_dlib_face_resnet', 'TapGrid', 'PairHead', 'ConcatHead', 'L1Head', 'DistanceHead', 'CosineHead', 'HEADS', 'create_pair_head',
           'SiameseModel', 'siamese_splitter', 'ProtoNet', 'CosineClassifier', 'EnsembleEncoder', 'prototypes', 'sq_distances']
