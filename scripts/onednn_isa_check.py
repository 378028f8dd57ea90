"""Which instruction set decides chapter 05's numbers? Replays the chapter's own random stream up to its first AIS
lever row (the exact-log Z section, the digits, the base, then K = 300 on ``ch.rng(8)``) and prints that row's AIS
upper bound beside the values committed from an AVX2 machine (0949daf) and an AVX512 one (28da07a).

Run it twice, natively and with oneDNN capped at AVX2, to see which machine type a run reproduces to the bit:

    python scripts/onednn_isa_check.py /tmp/isa_native
    ONEDNN_MAX_CPU_ISA=AVX2 python scripts/onednn_isa_check.py /tmp/isa_avx2

About 5.5 minutes on one thread (stop 32 on an AVX512 machine: native 2013.6768992308807, the AVX512 run's value;
capped 2013.6768688896573, the AVX2 run's). Needs MNIST (``EBMLIB_MNIST_SRC``) and the git history.
"""
import json
import os
import subprocess
import sys

from ebmlib.chapters import ais_levers as V
from ebmlib.chapters import likelihood as L
from ebmlib.data import load_mnist
from ebmlib.notebook.setup import start

COMMITTED = {"AVX2 machine (0949daf)": "0949daf", "AVX512 machine (28da07a)": "28da07a"}


def committed_upper(rev: str) -> float:
    record = json.loads(subprocess.check_output(["git", "show", f"{rev}:book/results/05_likelihood.json"]))
    return record["metrics"]["levers"]["rows"][0]["upper"]


def main(out_dir: str) -> None:
    ch = start("05_likelihood", "demo", 0, out_dir, {})
    cfg, gen = ch.cfg, ch.rng(0)
    mnist_train, mnist_test = load_mnist("mnist", "train"), load_mnist("mnist", "test")
    L.run_exact(L.exact_problems(cfg.exact_dims, mnist_train, gen), cfg.exact_temps, cfg.exact_chains, gen,
                **cfg.ais_settings)                       # consumes the stream exactly as the chapter does
    digits = L.evaluation_digits(mnist_train, mnist_test, cfg.n_base_fit, cfg.n_test, cfg.histogram_n, gen)
    t = L.train_models(cfg, 0, out_dir=out_dir, progress=False)[cfg.lever_model]
    row = V.lever_study(t.model, digits.test, digits.base, t.samples, 3e-5, cfg.levers[:1],
                        n_chains=cfg.lever_chains, generator=ch.rng(8), **cfg.ais_settings)[0]
    print(f"ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', '(native)')}: K = 300 AIS upper "
          f"{row['upper']!r}")
    for name, rev in COMMITTED.items():
        print(f"  committed from an {name}: {committed_upper(rev)!r}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "_results/isa_check")
