"""Inference on new images: test-time views (`views`), batches, embeddings and scores (`embedding`), support-set
classification (`support`: `SupportSet`, `classify`) and pair prediction (`pairs`: `predict_pair(s)`)."""
from ..data.images import to_image
from .views import shift_views, flip_views, affine_views, tta_views, tta_from_spec, learner_tta
from .embedding import model_device, pair_batch, image_batch, embed, similarity, class_scores, support_scores
from .support import SupportSet, classify
from .pairs import predict_pairs, predict_pair

__all__ = ['model_device', 'shift_views', 'flip_views', 'affine_views', 'tta_views', 'tta_from_spec', 'learner_tta',
           'to_image', 'pair_batch', 'image_batch', 'predict_pairs', 'predict_pair', 'embed', 'similarity',
           'class_scores', 'support_scores', 'SupportSet', 'classify']
