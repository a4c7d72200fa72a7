"""Interpretation: CAM, Grad-CAM and similarity maps, their overlays and boxes, and top losses of pairs and episodes."""
from .maps import (CamResult, cam, cam_result, grad_cam, similarity_maps, PairMaps, last_conv_layer, normalize_maps,
                  model_inputs)
from .show import cam_bbox, show_cam, show_pair_cam, show_cams, CAMCallback, display_image, save_figure
from .verbs import pair_top_losses, episode_top_losses

__all__ = ['CamResult', 'cam', 'cam_result', 'grad_cam', 'similarity_maps', 'PairMaps', 'last_conv_layer', 'normalize_maps',
           'model_inputs', 'cam_bbox', 'show_cam', 'show_pair_cam', 'show_cams', 'CAMCallback', 'display_image', 'save_figure',
           'pair_top_losses', 'episode_top_losses']
