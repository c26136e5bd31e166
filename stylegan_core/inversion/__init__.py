"""inversion: projector, perceptual, align, paste_back, metrics, style_prior."""
