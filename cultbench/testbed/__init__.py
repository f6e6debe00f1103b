"""The planted-culture testbed: small causal LMs built by cultbench whose culture and position bias
are known, so the benchmark and its aligners are checked against ground truth (docs/testbed.md).

``groundtruth``: item-level answer distributions per country from the reference profiles;
``wordings``: the training wordings, disjoint from the benchmark's; ``build``: training and the
model folder; ``check``: the benchmark's sensitivity and specificity on the testbeds.
"""
