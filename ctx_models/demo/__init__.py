"""The demo data that ships with ctx_models: a small hand-written corpus, a labelled
question set for it, a synthetic corpus for load tests, and the code that seeds a store.

``ctx-models seed`` (and ``python -m ctx_models seed``) loads it into any database,
so a wheel installed outside the repository can be tried without a clone.
"""
