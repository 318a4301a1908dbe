"""``pytest-gpubench advise``: one answer per model and device, each cell naming its source.

``sources`` reads measured baselines and published references into figures (single-user decode
and prefill rates, TTFT, energy, sweeps); ``predict`` turns figures of other models and devices
into calibrated predictions with an error band; ``validate`` predicts every stored figure from
the others (the docs' prediction-error table); ``table`` assembles and renders the rows.
"""
