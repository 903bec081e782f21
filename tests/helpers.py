"""Test helpers: the agreement machinery lives in the package (``fastsac.agreement``)."""

from fastsac.agreement import (  # noqa: F401
    MODULES,
    copy_weights,
    max_adam_diff,
    max_param_diff,
    random_batch,
    run_graph_twins,
    run_twins,
    twin_agents,
)
