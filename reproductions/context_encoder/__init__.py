"""Context Encoders: Feature Learning by Inpainting (Pathak et al., CVPR 2016)."""
