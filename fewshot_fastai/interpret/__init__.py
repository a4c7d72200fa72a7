"""Interpretation: exact CAM, the CAM family (Grad-CAM, HiResCAM, Grad-CAM++, XGrad-CAM, LayerCAM, EigenCAM, EigenGradCAM,
Score-CAM, Ablation-CAM) and similarity maps, their overlays and boxes, faithfulness metrics (ROAD, deletion / insertion, confidence change), and top losses of pairs and episodes."""
from .maps import CamResult, cam, cam_result, grad_cam, family_cam, last_conv_layer, normalize_maps, model_inputs
from .pairs import PairMaps, SupportMaps, similarity_maps, partner_maps, support_maps, pair_layer
from .family import (LayerPass, BaseCAM, GradCAM, HiResCAM, GradCAMPlusPlus, XGradCAM, LayerCAM, EigenCAM, EigenGradCAM, ScoreCAM,
                     AblationCAM, CAM_METHODS, principal_projection, token_reshape, default_cam_layers)
from .show import cam_bbox, show_cam, show_pair_cam, show_cams, CAMCallback, display_image, save_figure
from .verbs import pair_top_losses, episode_top_losses
from .metrics import class_score, partner_score, confidence_change, deletion_insertion, road, impute

__all__ = ['CamResult', 'cam', 'cam_result', 'grad_cam', 'similarity_maps', 'PairMaps', 'last_conv_layer', 'normalize_maps',
           'model_inputs', 'cam_bbox', 'show_cam', 'show_pair_cam', 'show_cams', 'CAMCallback', 'display_image', 'save_figure',
           'pair_top_losses', 'episode_top_losses', 'family_cam', 'partner_maps', 'support_maps', 'SupportMaps', 'pair_layer', 'LayerPass', 'BaseCAM', 'GradCAM', 'HiResCAM',
           'GradCAMPlusPlus', 'XGradCAM', 'LayerCAM', 'EigenCAM', 'EigenGradCAM', 'ScoreCAM', 'AblationCAM', 'CAM_METHODS',
           'principal_projection', 'token_reshape', 'default_cam_layers', 'class_score', 'partner_score', 'confidence_change',
           'deletion_insertion', 'road', 'impute']
