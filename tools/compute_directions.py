"""Compute the edit directions of a model and store them in the package (for the default model) or
in the weights cache: `python tools/compute_directions.py [--model ffhq-mobile] [--samples 400]`.

Renders and judges `samples` faces (resumable: the judged samples are cached under
weights/directions/<model>/samples.npz), fits the supervised directions, measures every
direction on a few probe faces and writes manifest.json + vectors.npy.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stylegan_core.editing import directions as D  # noqa: E402
from stylegan_core.loading.zoo import DEFAULT_MODEL, load_model  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--probe-faces", type=int, default=3)
    parser.add_argument("--out", default=None, help="folder (default: stylegan_core/data/directions/<model>)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    loaded = load_model(args.model)
    found = D.compute_directions(loaded.generator, loaded.name, args.samples, args.probe_faces,
                                 progress=lambda line: print(line, flush=True))
    out = Path(args.out) if args.out else D.PACKAGED_DIR / loaded.name
    D.save_directions(found, out)
    print(f"saved {len(found.directions)} directions to {out} in {found.info['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
