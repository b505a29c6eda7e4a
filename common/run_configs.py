"""A run's settings that are not the paper's own: the loop, the data, precision, devices.

Plain values, built from flags by `common.cli.run_config_from_flags` or directly
(the tests and notebooks do); the library code that runs a paper
(`common.experiment`) reads them and never a flag.
"""

from __future__ import annotations

import dataclasses

from common import perceptual_metrics
from common import train_loop


@dataclasses.dataclass(frozen=True)
class DataConfig:
    train_data: str
    eval_data: str
    eval_examples: int
    batch_size: int
    seed: int
    shuffle_buffer: int


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything about a run that is not the paper's own."""

    loop: train_loop.LoopConfig
    data: DataConfig
    mixed_precision: str
    strategy: str
    deterministic: bool = False
    # LPIPS in the periodic evaluation (None or disabled: none).
    lpips: perceptual_metrics.PerceptualConfig | None = None
    # The resolved flags ("--name=value" lines), recorded in workdir/flags.cfg
    # once the run starts; empty when the run was configured without flags.
    flag_lines: tuple[str, ...] = ()



MAX_SEED = 2**32 - 1  # NumPy's and keras.utils.set_random_seed's largest seed
