"""models: generator, stylegan2, mobile_stylegan, stylegan3."""
