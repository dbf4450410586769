"""Early-exit offloading across mobile, edge and cloud (Zuo 2024, Pre-DNNOff).

``problem`` holds the model and evaluator (eq. 4.4-4.8), ``latency`` the Table 4.2 and
fitted per-layer predictors, ``instance`` the input file and builder, and one module per
solver: ``exact`` (tree DP), ``ga`` (§4.4, DEAP) and ``edgent`` (the baseline).
``runtime`` runs a partitioned BranchyNet across agent, edge and cloud processes.
"""
