"""Reading weights of every format into the project's models (users call `zoo.load_model`).

- safe_pickle.py: the restricted pickle reader (no code runs, no allocation beyond the file) and
  `PersistentRecord`, NVlabs' network objects as plain data; `CheckpointError`.
- files.py: any checkpoint file -> `LoadedCheckpoint`, the format chosen by content.
- nvlabs.py: NVlabs pickles, dispatched by the generator's structure to the converter registered
  for its architecture (`register_nvlabs_converter`).
- stylegan2_formats.py: StyleGAN2 from NVlabs pickles and state dicts and rosinality files.
- mobile_stylegan_ir.py: MobileStyleGAN from the OpenVINO IR of random-face.
- common.py: what converters share (building a model the file can fill, the fill step).
The project's own safetensors export, which caches every conversion, is export.py.
"""
