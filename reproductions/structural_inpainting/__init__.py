"""Structural Inpainting (Vo, Duong, Pérez; ACM MM 2018): Context Encoders with a perceptual loss."""
