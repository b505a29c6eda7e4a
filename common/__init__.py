"""Shared building blocks of the inpainting reproductions.

Conventions used everywhere in the suite:
  * images are float32 NHWC RGB in [-1, 1];
  * masks are float32 with 1 = hole, 0 = known pixel, shape HxWx1 (or NxHxWx1).
Conversions happen once, at the edges (files, plots, metrics in [0, 1]).
"""
