"""Image Fine-grained Inpainting, DMFN (Hui, Li, Wang, Gao; 2020)."""
