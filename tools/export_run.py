"""A trained run's final stages without optimizer state, to share or commit: Run.load, generate.py and
sweep_latent_scale.py open the copy as they open the run (copy it under runs/ first: they write beside it).

    python tools/export_run.py runs/fm_conv/first_0 --out results/fashion_mnist_first_stage_seeds/run_seed_0
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vaevar import cli, errors, files  # noqa: E402

OUT = None  # the folder the copy goes to (required)


def main(argv=None):
    args = cli.parse_constants(globals(), __doc__, argv, positional=("run_dir", "the run to export"))
    if len(args.run_dir) != 1 or not args.out:
        raise errors.VaevarError("give one run folder and --out: python tools/export_run.py RUN --out DIR")
    from vaevar.run_folder import export_weights

    for path in export_weights(args.run_dir[0], args.out):
        print(f"{path}  {os.path.getsize(path):,} bytes  sha256 {files.file_digest(path)[:16]}")


if __name__ == "__main__":
    errors.run_main(main)
