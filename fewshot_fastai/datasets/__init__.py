"""What is specific to a dataset: the Omniglot and ORL sources, Omniglot's pen strokes, Lake's one-shot runs,
ink centring of drawings, face alignment of photos, and Omniglot's alphabet/drawer naming."""
from .sources import OMNIGLOT_URL, OMNIGLOT, omniglot, orl_faces
from .naming import alphabet_of, drawer_of
from .ink import ink_center, InkCenter
from .faces import face_chip, face_chip_transform, face_landmarks, FaceAlign
from .strokes import (OMNIGLOT_STROKES, omniglot_strokes, read_strokes, render_strokes, perturb_strokes, drop_hidden_taps,
                      stroke_file, StrokeImages, with_strokes)
from .runs import LAKE_RUNS_URL, Run, lake_runs, load_runs, write_runs

__all__ = ['OMNIGLOT_URL', 'OMNIGLOT', 'omniglot', 'orl_faces', 'alphabet_of', 'drawer_of', 'ink_center', 'InkCenter',
           'face_chip', 'face_chip_transform', 'face_landmarks', 'FaceAlign',
           'OMNIGLOT_STROKES', 'omniglot_strokes', 'read_strokes', 'render_strokes', 'perturb_strokes',
           'drop_hidden_taps', 'stroke_file', 'StrokeImages', 'with_strokes', 'LAKE_RUNS_URL', 'Run', 'lake_runs',
           'load_runs', 'write_runs']
