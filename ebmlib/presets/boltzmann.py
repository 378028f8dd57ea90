"""Chapter 09 (restricted Boltzmann machines on binarised MNIST): sizes per scale.

``models`` maps a name to ``n_hidden`` and the fields of ``ebmlib.core.rbm.RBMTrainConfig``; ``exact`` is the
RBM small enough to enumerate (2^n_hidden hidden states) whose exact log Z checks AIS. "paper" is the setting
under which RBM likelihoods are usually reported (500 hidden units, CD-1 / CD-3 / CD-25, as Salakhutdinov & Murray
2008 compare them, and PCD), not an experiment of Du & Mordatch. DEMO is written out whole; SMOKE and PAPER name
only the keys they change (each replaces DEMO's value whole).
"""

_TRAIN = dict(lr=0.05, momentum=0.5, weight_decay=1e-4, batch_size=100)

DEMO = dict(
    threads=1, device="cpu", n_train=60000, n_test=10000, binarise_seed=0,
    exact=dict(n_hidden=16, method="cd", k=1, epochs=5, **_TRAIN),
    exact_chains=100, exact_temps=(100, 1000, 10000),
    models={
        "CD-1": dict(n_hidden=500, method="cd", k=1, epochs=5, **_TRAIN),
        "CD-10": dict(n_hidden=500, method="cd", k=10, epochs=5, **_TRAIN),
        "PCD-1": dict(n_hidden=500, method="pcd", k=1, epochs=5, **_TRAIN),
    },
    ais_chains=100, ais_temps=3000,
    filters=36, samples=36, sample_steps=1000,
)

SMOKE = dict(
    n_train=1000, n_test=500,
    exact=dict(n_hidden=6, method="cd", k=1, epochs=1, **_TRAIN),
    exact_chains=20, exact_temps=(10, 50),
    models={
        "CD-1": dict(n_hidden=16, method="cd", k=1, epochs=1, **_TRAIN),
        "PCD-1": dict(n_hidden=16, method="pcd", k=1, epochs=1, **_TRAIN),
    },
    ais_chains=10, ais_temps=50, filters=9, samples=9, sample_steps=20,
)

PAPER = dict(
    exact=dict(n_hidden=20, method="cd", k=1, epochs=20, **_TRAIN),
    exact_temps=(100, 1000, 10000, 30000),
    models={
        "CD-1": dict(n_hidden=500, method="cd", k=1, epochs=50, **_TRAIN),
        "CD-3": dict(n_hidden=500, method="cd", k=3, epochs=50, **_TRAIN),
        "CD-25": dict(n_hidden=500, method="cd", k=25, epochs=50, **_TRAIN),
        "PCD-1": dict(n_hidden=500, method="pcd", k=1, epochs=50, **_TRAIN),
    },
    ais_chains=100, ais_temps=14500, sample_steps=10000,
)

# CI runs the paper branch with these sizes: every model of the paper setting, a few batches each
PAPER_SHRUNK = {
    "n_train": 300, "n_test": 200, "exact.n_hidden": 6, "exact.epochs": 1, "exact_temps": (10, 20),
    "models.CD-1.n_hidden": 8, "models.CD-3.n_hidden": 8, "models.CD-25.n_hidden": 8, "models.PCD-1.n_hidden": 8,
    "models.CD-1.epochs": 1, "models.CD-3.epochs": 1, "models.CD-25.epochs": 1, "models.PCD-1.epochs": 1,
    "ais_chains": 5, "ais_temps": 20, "sample_steps": 10,
}
